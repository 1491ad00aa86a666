#!/usr/bin/env bash
# Refresh the JavaScript libraries that `spa report` inlines into its pages
# (python/spa/html_report/vendor/): the npm packages at the versions below,
# their minified browser builds and their licences. Needs npm; run it from
# anywhere, then commit the changed files with the new versions.
set -euo pipefail
CYTOSCAPE=3.35.0   # graph drawing, pan and zoom
DAGRE=3.1.4        # layered layout of the layer graph (@dagrejs/dagre bundles graphlib)
CHARTJS=4.6.2      # sensitivity curves

vendor="$(cd "$(dirname "$0")/../../python/spa/html_report/vendor" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "cytoscape@$CYTOSCAPE" "@dagrejs/dagre@$DAGRE" "chart.js@$CHARTJS" > /dev/null
unpack() { mkdir -p "$2" && tar xzf "$1" -C "$2" --strip-components=1; }
unpack cytoscape-*.tgz cytoscape
unpack dagrejs-dagre-*.tgz dagre
unpack chart.js-*.tgz chartjs
cp cytoscape/dist/cytoscape.min.js cytoscape/LICENSE "$vendor/" && mv "$vendor/LICENSE" "$vendor/cytoscape.LICENSE"
cp dagre/dist/dagre.min.js "$vendor/" && cp dagre/LICENSE "$vendor/dagre.LICENSE"
cp chartjs/dist/chart.umd.min.js "$vendor/" && cp chartjs/LICENSE.md "$vendor/chart.js.LICENSE"
printf 'cytoscape %s\n@dagrejs/dagre %s\nchart.js %s\n' "$CYTOSCAPE" "$DAGRE" "$CHARTJS" > "$vendor/VERSIONS"
echo "vendored into $vendor: $(tr '\n' ' ' < "$vendor/VERSIONS")"
