// The interactive part of a `spa report` page: reads the JSON in #spa-data and draws it.
// Selection state is mirrored on <body data-selected-group> and in the URL hash (#group=ID),
// so that a link opens a group and a headless browser can check what is highlighted.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('spa-data').textContent);
  const groups = new Map(data.groups.map((g) => [g.id, g]));
  const hasAfter = Boolean(data.totals.after);
  const number = (n) => (n === null || n === undefined ? '' : Number(n).toLocaleString('en-US'));
  const ms = (n) => (n === null || n === undefined ? '' : Number(n).toFixed(3));
  const percent = (before, after) => (before ? `${(100 * (1 - after / before)).toFixed(1)} % less` : '');
  // Golden-angle hues keep neighbouring group ids apart in colour.
  const colour = (id) => (id === null || id === undefined ? '#b8c0cc' : `hsl(${(id * 137.508) % 360}, 62%, 58%)`);
  const troubled = (g) => g && (g.status === 'blocked' || g.status === 'unprunable');

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function card(title, value, detail) {
    const box = element('div', undefined, 'card');
    box.append(element('span', title), element('b', value));
    if (detail) box.append(element('span', detail, 'note'));
    return box;
  }

  function showTotals() {
    document.getElementById('model-name').textContent = data.model;
    const totals = document.getElementById('totals');
    const { before, after } = data.totals;
    for (const key of ['params', 'macs']) {
      const label = key === 'params' ? 'Parameters' : 'MACs (one sample)';
      totals.append(card(label, after ? `${number(before[key])} → ${number(after[key])}` : number(before[key]),
        after ? percent(before[key], after[key]) : undefined));
    }
    const latency = data.latency;
    if (latency && latency.before) {
      const text = latency.after ? `${ms(latency.before.median_ms)} → ${ms(latency.after.median_ms)} ms`
        : `${ms(latency.before.median_ms)} ms`;
      const speedup = latency.after ? `${(latency.before.median_ms / latency.after.median_ms).toFixed(2)}× faster; ` : '';
      totals.append(card('Latency (onnxruntime)', text,
        `${speedup}median of ${latency.repeats} runs${latency.after ? ' each, timed in alternation' : ''}, batch ${latency.batch}, ${latency.threads} thread(s)`));
    } else if (latency && latency.note) {
      totals.append(card('Latency', 'not measured', latency.note));
    }
    const counts = { pruned: 0, kept: 0, blocked: 0, unprunable: 0 };
    data.groups.forEach((g) => { counts[g.status] += 1; });
    totals.append(card('Coupling groups', `${data.groups.length}`,
      `${counts.pruned} pruned, ${counts.kept} kept, ${counts.blocked} blocked, ${counts.unprunable} unprunable`));
    document.getElementById('data-used').textContent = data.data_used ? `Data used: ${data.data_used}` : '';
  }

  function layerLabel(row) {
    const parts = row.id.split('/').filter(Boolean);
    if (parts.length > 1 && parts[parts.length - 1] === row.op) parts.pop();  // torch's "/block/conv1/Conv"
    let name = parts.slice(-2).join('/') || row.id;
    if (name.length > 30) name = `…${name.slice(-29)}`;
    const width = hasAfter && row.width_after !== row.width_before ? `${row.width_before}→${row.width_after}`
      : `${row.width_before ?? ''}`;
    return `${name}\n${row.op} ${width}`;
  }

  function graphElements() {
    const nodes = data.layers.map((row) => ({
      data: { id: row.id, label: layerLabel(row), colour: colour(row.group), group: row.group },
      classes: troubled(groups.get(row.group)) ? 'troubled' : '',
    }));
    data.junctions.forEach((j) => nodes.push({ data: { id: j.id, label: j.op }, classes: 'junction' }));
    data.inputs.forEach((name) => nodes.push({ data: { id: `input:${name}`, label: `input ${name}` }, classes: 'end' }));
    data.outputs.forEach((name) => nodes.push({ data: { id: `output:${name}`, label: `output ${name}` }, classes: 'end' }));
    const known = new Set(nodes.map((n) => n.data.id));
    const edges = data.edges.filter(([a, b]) => known.has(a) && known.has(b))
      .map(([a, b], i) => ({ data: { id: `e${i}`, source: a, target: b } }));
    return { nodes, edges };
  }

  function layout(nodes, edges) {
    // dagre places the layers in ranks along the data flow; cytoscape draws them where dagre said.
    const graph = new dagre.graphlib.Graph();
    graph.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 34 });
    graph.setDefaultEdgeLabel(() => ({}));
    nodes.forEach((n) => graph.setNode(n.data.id, n.classes === 'junction' ? { width: 46, height: 18 }
      : { width: 150, height: 38 }));
    edges.forEach((e) => graph.setEdge(e.data.source, e.data.target));
    dagre.layout(graph);
    nodes.forEach((n) => { const p = graph.node(n.data.id); n.position = { x: p.x, y: p.y }; });
  }

  const style = [
    { selector: 'node', style: { shape: 'round-rectangle', width: 150, height: 38, 'background-color': 'data(colour)',
      label: 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'center', 'font-size': 9, color: '#111',
      'border-width': 1, 'border-color': '#59606b' } },
    { selector: 'node.end', style: { shape: 'ellipse', 'background-color': '#e8edf6', width: 110 } },
    { selector: 'node.junction', style: { shape: 'ellipse', 'background-color': '#eef1f6', width: 46, height: 18,
      'font-size': 8, color: '#4a5568', 'border-color': '#9aa3b2' } },
    { selector: 'node.troubled', style: { 'border-width': 3, 'border-style': 'dashed', 'border-color': '#b42318' } },
    { selector: 'edge', style: { width: 1.2, 'line-color': '#9aa3b2', 'target-arrow-color': '#9aa3b2',
      'target-arrow-shape': 'triangle', 'curve-style': 'bezier', 'arrow-scale': 0.7 } },
    { selector: '.faded', style: { opacity: 0.22 } },
    { selector: 'node.member', style: { 'border-width': 4, 'border-color': '#111', 'border-style': 'solid' } },
    { selector: 'node.consumer', style: { 'border-style': 'double', 'border-width': 5 } },
  ];

  let cy = null;

  function drawGraph() {
    const { nodes, edges } = graphElements();
    layout(nodes, edges);
    cy = cytoscape({ container: document.getElementById('graph'), elements: nodes.concat(edges), style,
      layout: { name: 'preset' }, wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 3,
      textureOnViewport: nodes.length > 400, hideEdgesOnViewport: nodes.length > 400 });
    const readable = 0.8;
    if (cy.zoom() > 1.2) {  // a small network need not fill the panel with giant boxes
      cy.zoom(1.2);
      cy.center();
    } else if (cy.zoom() < readable) {  // a deep network fitted whole is unreadable: start at its top, readable
      const box = cy.elements().boundingBox();
      cy.zoom(readable);
      cy.pan({ x: cy.width() / 2 - readable * (box.x1 + box.x2) / 2, y: 20 - readable * box.y1 });
    }
    cy.on('tap', 'node', (event) => {
      const id = event.target.data('group');
      if (id !== undefined && id !== null) selectGroup(id);
    });
    cy.on('tap', (event) => { if (event.target === cy) selectGroup(null); });
    document.body.dataset.nodes = String(nodes.length);
    document.body.dataset.edges = String(edges.length);
  }

  function describeGroup(g) {
    const lines = [`Group ${g.id}: ${g.channels} channels, ${g.status}`];
    if (g.removed) lines.push(`removed ${g.removed} of ${g.channels}`);
    if (g.reasons.length) lines.push(`why: ${g.reasons.join('; ')}`);
    lines.push(g.function_preserving ? 'function-preserving' : 'not function-preserving (feeds a normalisation or reduction)');
    lines.push(`layers: ${g.layers.map((l) => `${l.id} (${l.role})`).join(', ') || 'none drawn'}`);
    lines.push(`constants: ${g.tensors.join(', ')}`);
    return lines.join('\n');
  }

  function selectGroup(id) {
    const g = id === null ? null : groups.get(id);
    document.querySelectorAll('#group-list li, #layer-table tr').forEach((n) => n.classList.remove('selected'));
    if (cy) cy.elements().removeClass('faded member consumer');
    const selection = document.getElementById('selection');
    if (!g) {
      selection.textContent = 'No group selected.';
      delete document.body.dataset.selectedGroup;
      return;
    }
    selection.textContent = describeGroup(g);
    document.body.dataset.selectedGroup = String(g.id);
    const item = document.getElementById(`group-${g.id}`);
    if (item) { item.classList.add('selected'); }
    const members = new Set(g.layers.map((l) => l.id));
    document.querySelectorAll('#layer-table tbody tr').forEach((tr) => {
      if (members.has(tr.dataset.layer)) tr.classList.add('selected');
    });
    if (cy) {
      cy.elements().addClass('faded');
      g.layers.forEach((l) => {
        const node = cy.getElementById(l.id);
        node.removeClass('faded').addClass(l.role === 'consumer' ? 'member consumer' : 'member');
      });
      const highlighted = cy.nodes('.member');
      document.body.dataset.highlighted = String(highlighted.length);
      if (highlighted.length) {  // bring the group into view, at a zoom where its labels can be read
        cy.fit(highlighted, 60);
        cy.zoom(Math.min(Math.max(cy.zoom(), 0.45), 1.2));
        cy.center(highlighted);
      }
    }
    if (window.location.hash !== `#group=${g.id}`) history.replaceState(null, '', `#group=${g.id}`);
  }

  function listGroups() {
    const list = document.getElementById('group-list');
    const order = { blocked: 0, unprunable: 1, pruned: 2, kept: 3 };
    const sorted = [...data.groups].sort((a, b) => order[a.status] - order[b.status] || a.id - b.id);
    for (const g of sorted) {
      const item = element('li');
      item.id = `group-${g.id}`;
      item.dataset.status = g.status;
      const swatch = element('span', undefined, 'swatch');
      swatch.style.background = colour(g.id);
      const removed = g.removed ? `, −${g.removed}` : '';
      const text = element('span', `#${g.id} · ${g.channels} ch${removed} · `);
      const status = element('span', g.status, `status-${g.status}`);
      if (g.reasons.length) status.title = g.reasons.join('; ');
      item.append(swatch, text, status);
      item.addEventListener('click', () => selectGroup(g.id));
      list.append(item);
    }
    document.getElementById('group-count').textContent = String(data.groups.length);
    document.body.dataset.groups = String(data.groups.length);
  }

  function fillTable() {
    const body = document.querySelector('#layer-table tbody');
    for (const row of data.layers) {
      const tr = element('tr');
      tr.dataset.layer = row.id;
      const cells = [row.id, row.op, row.group ?? '', row.width_before ?? '', hasAfter ? row.width_after ?? '' : '',
        number(row.params_before), hasAfter ? number(row.params_after) : '', number(row.macs_before),
        hasAfter ? number(row.macs_after) : '', ms(row.latency_before), ms(row.latency_after)];
      cells.forEach((value) => tr.append(element('td', String(value))));
      if (hasAfter && row.width_after !== row.width_before) tr.classList.add('changed');
      if (row.group !== null) tr.addEventListener('click', () => selectGroup(row.group));
      body.append(tr);
    }
    document.body.dataset.layers = String(data.layers.length);
  }

  function drawSensitivity() {
    if (!data.sensitivity.length) return;
    document.getElementById('sensitivity-section').hidden = false;
    const datasets = data.sensitivity.map((curve) => ({
      label: `group ${curve.group}`, data: curve.points, showLine: true, borderColor: colour(curve.group),
      backgroundColor: colour(curve.group), pointRadius: 2, borderWidth: 1.5,
    }));
    new Chart(document.getElementById('sensitivity-chart'), {
      type: 'scatter', data: { datasets },
      options: { animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: datasets.length <= 16 } },
        scales: { x: { title: { display: true, text: 'fraction of the group removed' }, min: 0, max: 1 },
          y: { title: { display: true, text: 'damage to the outputs' }, beginAtZero: true } } },
    });
    document.body.dataset.curves = String(datasets.length);
  }

  function run(step, name) {
    try { step(); } catch (error) {  // one broken part must not blank the rest of the page
      document.body.dataset[`${name}Error`] = String(error);
      console.error(error);
    }
  }

  run(showTotals, 'totals');
  run(listGroups, 'groups');
  run(fillTable, 'table');
  run(drawGraph, 'graph');
  run(drawSensitivity, 'sensitivity');
  const wanted = /^#group=(\d+)$/.exec(window.location.hash);
  if (wanted) run(() => selectGroup(Number(wanted[1])), 'selection');
  document.body.dataset.ready = 'true';
}());
