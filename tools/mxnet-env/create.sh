#!/usr/bin/env bash
# Create .venv-mxnet for the MXNet adapter: MXNet 1.9.1 with the NumPy it needs (< 1.24), on top of an
# existing SPA environment (default .venv). MXNet cannot share an environment with NumPy 2 (which torch and
# JAX need), so it gets its own; SPA, onnx and onnxruntime are taken from the base environment through a
# .pth file, behind this environment's own NumPy, instead of being built a second time.
set -euo pipefail
cd "$(dirname "$0")/../.."
base="${1:-.venv}"
target=.venv-mxnet

"$base/bin/python" -c "import spa" || { echo "error: $base has no SPA installed; set it up first (README)" >&2; exit 1; }
python3.11 -m venv "$target"
# ml_dtypes 0.6 (onnx's dependency) needs NumPy 2; 0.5.1 is the newest that runs on 1.23.
"$target/bin/pip" install --quiet mxnet==1.9.1 numpy==1.23.5 ml_dtypes==0.5.1
site_packages="$("$target/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_site_packages="$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# A .pth line starting with "import" runs: add the base site-packages (and its own .pth files) after ours.
echo "import site; site.addsitedir('$base_site_packages')" > "$site_packages/spa-base-env.pth"
"$target/bin/python" -c "import mxnet, numpy, spa.mxnet; print('MXNet', mxnet.__version__, 'with NumPy', numpy.__version__, 'ready in $target')"
