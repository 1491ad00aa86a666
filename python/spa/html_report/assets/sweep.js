// The page of `spa sweep`: reads the JSON in #spa-data, draws the Pareto chart and the results table.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('spa-data').textContent);
  const colour = (i) => `hsl(${(i * 137.508) % 360}, 62%, 48%)`;
  const quality = (row) => (row.top1_agreement !== null && row.top1_agreement !== undefined
    ? row.top1_agreement : 1 - Math.min(row.output_error ?? 1, 1));
  const fixed = (value, digits) => (value === null || value === undefined ? '' : Number(value).toFixed(digits));
  const front = new Set(data.pareto);
  document.getElementById('model-name').textContent = data.model;

  const criteria = [...new Set(data.rows.map((row) => row.criterion))];
  const datasets = criteria.map((criterion, i) => ({
    label: criterion, backgroundColor: colour(i), borderColor: colour(i), pointRadius: 5,
    data: data.rows.filter((row) => row.criterion === criterion && row.latency_ms !== undefined)
      .map((row) => ({ x: row.latency_ms, y: quality(row), target: row.target })),
  }));
  datasets.push({ label: 'dense', backgroundColor: '#111', pointStyle: 'rectRot', pointRadius: 7,
    data: [{ x: data.dense.latency_ms, y: 1 }] });
  const frontPoints = data.pareto.map((i) => ({ x: data.rows[i].latency_ms, y: quality(data.rows[i]) }));
  datasets.push({ label: 'Pareto front', data: frontPoints, showLine: true, borderColor: '#888', borderDash: [5, 4],
    pointRadius: 0, fill: false });
  new Chart(document.getElementById('pareto-chart'), {
    type: 'scatter', data: { datasets },
    options: { animation: false, maintainAspectRatio: false,
      scales: { x: { title: { display: true, text: 'latency (ms)' } },
        y: { title: { display: true, text: 'quality (top-1 agreement)' }, suggestedMax: 1 } },
      plugins: { tooltip: { callbacks: { label: (item) => `${item.dataset.label} ${item.raw.target ?? ''}: ` +
        `${item.raw.x.toFixed(2)} ms, ${item.raw.y.toFixed(3)}` } } } },
  });

  const body = document.querySelector('#sweep-table tbody');
  data.rows.forEach((row, i) => {
    const tr = document.createElement('tr');
    tr.dataset.criterion = row.criterion;
    tr.dataset.target = String(row.target);
    const cells = [row.criterion, row.target, fixed(row.params_removed, 3), fixed(row.macs_removed, 3),
      fixed(row.latency_ms, 2), fixed(row.top1_agreement, 3), fixed(row.output_error, 4),
      front.has(i) ? 'yes' : '', row.error || ''];
    cells.forEach((value) => { const td = document.createElement('td'); td.textContent = String(value); tr.append(td); });
    body.append(tr);
  });
  document.body.dataset.rows = String(data.rows.length);
  document.body.dataset.front = String(data.pareto.length);
  document.body.dataset.ready = 'true';
}());
