// The live view of the tidings collector: a tail of incoming events (from
// the server-sent events of /ui/events), events per name as a chart drawn
// here in SVG, refused requests and each sink's health (from
// /ui/api/state, every 2 s). No library, no build step; every text that
// comes from events or requests goes into the page as text, never markup.
(function () {
  'use strict';

  var KEY_ITEM = 'tidings.ui.key';
  var MAX_ROWS = 200;
  var POLL_MS = 2000;
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#17becf', '#8c564b'];
  var TOP_NAMES = 6;

  var key = null;
  var source = null;
  var pollTimer = null;
  var retryTimer = null;
  var filterTimer = null;
  var filter = '';
  var paused = false;
  var whilePaused = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  /** HH:MM:SS.mmm (UTC) of an RFC 3339 time. */
  function clock(at, millis) {
    var date = new Date(at);
    if (isNaN(date)) return '';
    return date.toISOString().slice(11, millis ? 23 : 19);
  }

  /** "12s ago", "in 3s". */
  function relative(at, now) {
    var seconds = Math.round((Date.parse(at) - now) / 1000);
    var n = Math.abs(seconds);
    var text = n < 120 ? n + 's' : n < 7200 ? Math.round(n / 60) + 'min' : Math.round(n / 3600) + 'h';
    return seconds < 0 ? text + ' ago' : 'in ' + text;
  }

  function cut(text, max) { return text.length > max ? text.slice(0, max) + '…' : text; }

  // Name filters, as the server reads them: empty shows everything; with
  // `*` or `?` a glob over the whole name; else a substring.
  function glob(pattern, name) {
    var p = Array.from(pattern), n = Array.from(name);
    var pi = 0, ni = 0, resume = -1, runEnd = 0;
    while (ni < n.length) {
      if (pi < p.length && p[pi] === '*') { pi++; resume = pi; runEnd = ni; continue; }
      if (pi < p.length && (p[pi] === '?' || p[pi] === n[ni])) { pi++; ni++; continue; }
      if (resume < 0) return false;
      runEnd++; pi = resume; ni = runEnd;
    }
    while (pi < p.length && p[pi] === '*') pi++;
    return pi === p.length;
  }

  function matches(text, name) {
    if (!text) return true;
    if (/[*?]/.test(text)) return glob(text, name);
    return name.indexOf(text) >= 0;
  }

  function setStatus(text, kind) {
    var status = $('status');
    status.textContent = text;
    status.className = 'status ' + kind;
  }

  // --- the key --------------------------------------------------------------

  function showLogin(message) {
    $('board').hidden = true;
    $('totals').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    $('login-message').textContent = message || '';
    setStatus('signed out', 'idle');
    $('key').focus();
  }

  function signOut(message) {
    key = null;
    sessionStorage.removeItem(KEY_ITEM);
    stop();
    showLogin(message);
  }

  function stop() {
    if (source) source.close();
    source = null;
    clearTimeout(pollTimer);
    clearTimeout(retryTimer);
  }

  function start() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('totals').hidden = false;
    $('sign-out').hidden = false;
    connect();
    poll();
  }

  // --- the tail -------------------------------------------------------------

  function connect() {
    if (source) source.close();
    clearTimeout(retryTimer);
    var url = '/ui/events?key=' + encodeURIComponent(key);
    if (filter) url += '&name=' + encodeURIComponent(filter);
    setStatus('connecting…', 'idle');
    source = new EventSource(url);
    source.onopen = function () { setStatus(paused ? 'paused' : 'live', paused ? 'paused' : 'live'); };
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (paused) {
        whilePaused++;
        $('tail-note').textContent = whilePaused + ' new event' + (whilePaused === 1 ? '' : 's') + ' not shown while paused';
        return;
      }
      addRow(event);
    };
    source.addEventListener('lagged', function (message) {
      var missed = 0;
      try { missed = JSON.parse(message.data).missed; } catch (e) { /* shown as 0 */ }
      addNotice('skipped ' + missed + ' events: this page fell behind the collector');
    });
    source.addEventListener('bye', function () {
      setStatus('collector stopped', 'down');
      addNotice('the collector is shutting down');
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        // Refused (a wrong key, too many viewers) or gone: the state poll
        // tells a wrong key; otherwise try again in a while.
        setStatus('stream closed, retrying', 'down');
        retryTimer = setTimeout(function () { if (key) connect(); }, 5000);
      } else {
        setStatus('reconnecting…', 'down');
      }
    };
  }

  function trim(list) {
    while (list.childNodes.length > MAX_ROWS) list.removeChild(list.lastChild);
  }

  function addRow(event) {
    var list = $('tail');
    var row = el('li');
    var name = String(event.name);
    row.setAttribute('data-name', name);
    row.appendChild(el('span', 'at', clock(event.received_at || event.timestamp, true)));
    row.appendChild(el('span', 'name', name));
    var data = event.truncated ? '(' + event.bytes + ' bytes, too large to show)' : JSON.stringify(event.data);
    var shown = el('span', 'data', cut(data === undefined ? '' : data, 400));
    shown.title = cut(JSON.stringify(event), 4000);
    row.appendChild(shown);
    row.hidden = !matches(filter, name);
    list.insertBefore(row, list.firstChild);
    trim(list);
  }

  function addNotice(text) {
    var list = $('tail');
    var row = el('li', 'notice', text);
    list.insertBefore(row, list.firstChild);
    trim(list);
  }

  function applyFilter() {
    var rows = $('tail').querySelectorAll('li[data-name]');
    for (var i = 0; i < rows.length; i++) rows[i].hidden = !matches(filter, rows[i].getAttribute('data-name'));
    connect();
  }

  // --- the state ------------------------------------------------------------

  function poll() {
    clearTimeout(pollTimer);
    if (!key) return;
    fetch('/ui/api/state', {headers: {'Authorization': 'Bearer ' + key}, cache: 'no-store'})
      .then(function (response) {
        if (response.status === 401) {
          signOut('The collector refused this key.');
          return null;
        }
        if (!response.ok) throw new Error('status ' + response.status);
        return response.json();
      })
      .then(function (state) { if (state) render(state); })
      .catch(function () { setStatus('collector unreachable', 'down'); })
      .then(function () { if (key) pollTimer = setTimeout(poll, POLL_MS); });
  }

  function render(state) {
    var totals = state.totals;
    $('total-received').textContent = totals.events_received;
    $('total-accepted').textContent = totals.events_accepted;
    $('total-connections').textContent = totals.connections;
    $('total-streams').textContent = totals.streams + '/' + totals.max_streams;
    renderChart(state.rates, Date.parse(state.now) / 1000);
    renderRefusals(state.refusals);
    renderStages(state.stages, Date.parse(state.now));
  }

  function renderChart(rates, now) {
    var chart = $('chart'), legend = $('legend');
    clear(chart);
    clear(legend);
    var step = rates.bucket_seconds, slots = Math.round(rates.window_seconds / step);
    var last = Math.floor(now / step) * step, first = last - (slots - 1) * step;
    var totals = {}, other = 0;
    rates.buckets.forEach(function (bucket) {
      Object.keys(bucket.counts).forEach(function (name) { totals[name] = (totals[name] || 0) + bucket.counts[name]; });
      other += bucket.other;
    });
    var names = Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a] || (a < b ? -1 : 1); });
    var shown = names.slice(0, TOP_NAMES), rest = names.slice(TOP_NAMES);
    var series = shown.map(function (name) { return {name: name, values: new Array(slots).fill(0), total: totals[name]}; });
    var otherSeries = {name: 'other names', values: new Array(slots).fill(0), total: other};
    rest.forEach(function (name) { otherSeries.total += totals[name]; });
    rates.buckets.forEach(function (bucket) {
      var slot = Math.round((bucket.start - first) / step);
      if (slot < 0 || slot >= slots) return;
      // The current bucket is still filling: its rate is over the time so far.
      var seconds = bucket.start >= last ? Math.min(step, Math.max(1, now - bucket.start)) : step;
      series.forEach(function (s) { s.values[slot] += (bucket.counts[s.name] || 0) / seconds; });
      var more = bucket.other;
      rest.forEach(function (name) { more += bucket.counts[name] || 0; });
      otherSeries.values[slot] += more / seconds;
    });
    if (otherSeries.total > 0) series.push(otherSeries);

    var left = 44, right = 630, top = 10, bottom = 210;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    var scale = niceMax(max);
    for (var i = 0; i <= 4; i++) {
      var y = bottom - (bottom - top) * i / 4;
      chart.appendChild(svg('line', {x1: left, x2: right, y1: y, y2: y, 'class': 'grid'}));
      chart.appendChild(svg('text', {x: left - 6, y: y + 4, 'text-anchor': 'end', 'class': 'axis'}, formatRate(scale * i / 4)));
    }
    [[0, '-10 min'], [slots / 2, '-5 min'], [slots - 1, 'now']].forEach(function (tick) {
      var x = left + (right - left) * tick[0] / (slots - 1);
      chart.appendChild(svg('text', {x: x, y: bottom + 18, 'text-anchor': tick[0] === 0 ? 'start' : tick[0] === slots - 1 ? 'end' : 'middle', 'class': 'axis'}, tick[1]));
    });
    if (!series.length) {
      chart.appendChild(svg('text', {x: (left + right) / 2, y: (top + bottom) / 2, 'text-anchor': 'middle', 'class': 'empty'}, 'no events in the last 10 minutes'));
      return;
    }
    series.forEach(function (s, index) {
      var color = COLORS[index % COLORS.length];
      var points = s.values.map(function (v, slot) {
        var x = left + (right - left) * slot / (slots - 1);
        var y = bottom - (bottom - top) * v / scale;
        return x.toFixed(1) + ',' + y.toFixed(1);
      });
      var line = svg('polyline', {points: points.join(' '), stroke: color});
      line.setAttribute('data-name', s.name);
      line.appendChild(svg('title', {}, s.name));
      chart.appendChild(line);
      var item = el('li');
      item.setAttribute('data-name', s.name);
      var swatch = el('span', 'swatch');
      swatch.style.background = color;
      item.appendChild(swatch);
      item.appendChild(el('span', 'mono', s.name));
      item.appendChild(el('span', 'note', ' ' + s.total));
      legend.appendChild(item);
    });
  }

  function niceMax(max) {
    if (max <= 0) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(max)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= max) return steps[i] * power;
    return 10 * power;
  }

  function formatRate(v) { return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(v >= 1 ? 1 : 2); }

  function cell(row, text, className) {
    var td = el('td', className, text);
    row.appendChild(td);
    return td;
  }

  function emptyRow(body, columns, text) {
    var row = el('tr', 'empty-row');
    var td = cell(row, text);
    td.colSpan = columns;
    body.appendChild(row);
  }

  function renderRefusals(refusals) {
    var body = $('refusals').tBodies[0];
    clear(body);
    refusals.recent.forEach(function (r) {
      var row = el('tr');
      row.setAttribute('data-reason', r.reason);
      cell(row, clock(r.at, false));
      cell(row, r.status, 'num');
      cell(row, r.reason, 'mono');
      cell(row, (r.method + ' ' + r.path).trim(), 'mono');
      cell(row, r.message, 'msg');
      body.appendChild(row);
    });
    if (!refusals.recent.length) emptyRow(body, 5, 'none');
    var counts = Object.keys(refusals.by_reason).map(function (reason) { return reason + ' ' + refusals.by_reason[reason]; });
    $('refusal-counts').textContent = counts.length ? 'since start: ' + counts.join(' · ') : '';
  }

  function sum(counts) {
    return Object.keys(counts).map(function (reason) { return reason + ': ' + counts[reason]; }).join(', ');
  }

  function renderStages(stages, now) {
    var body = $('sinks').tBodies[0];
    clear(body);
    stages.forEach(function (s) {
      var row = el('tr');
      row.setAttribute('data-path', s.path);
      var name = cell(row, s.path, 'mono');
      name.title = s.kind;
      var paused = s.paused_until && Date.parse(s.paused_until) > now;
      var recentError = s.last_error && now - Date.parse(s.last_error.at) < 60000;
      var health = paused ? ['retrying', 'warn'] : recentError ? ['failing', 'bad'] : s.dropped_total > 0 ? ['dropping', 'warn'] : ['ok', 'ok'];
      var badge = el('span', 'badge ' + health[1], health[0]);
      cell(row, '').appendChild(badge);
      var queue = s.queued + (s.capacity ? '/' + s.capacity : '');
      if (s.buffered) queue += ' +' + s.buffered + ' in flight';
      if (s.waiting) queue += ', ' + s.waiting + ' waiting';
      cell(row, queue, 'num');
      cell(row, s.delivered, 'num');
      cell(row, s.retried, 'num');
      cell(row, s.dropped_total, 'num').title = sum(s.dropped);
      cell(row, s.dead_lettered_total, 'num').title = sum(s.dead_lettered);
      cell(row, s.last_error ? relative(s.last_error.at, now) + ': ' + s.last_error.message : '—', 'msg');
      cell(row, paused ? clock(s.paused_until, false) + ' (' + relative(s.paused_until, now) + ')' : '—');
      body.appendChild(row);
    });
  }

  // --- wiring ---------------------------------------------------------------

  $('login-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var typed = $('key').value.trim();
    if (!typed) {
      $('login-message').textContent = 'Enter the admin key.';
      return;
    }
    key = typed;
    $('key').value = '';
    sessionStorage.setItem(KEY_ITEM, key);
    start();
  });
  $('sign-out').addEventListener('click', function () { signOut(''); });
  $('pause').addEventListener('click', function () {
    paused = !paused;
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      whilePaused = 0;
      $('tail-note').textContent = 'paused';
      setStatus('paused', 'paused');
    } else {
      $('tail-note').textContent = whilePaused ? whilePaused + ' event' + (whilePaused === 1 ? '' : 's') + ' arrived while paused (not shown)' : '';
      setStatus('live', 'live');
    }
  });
  $('clear').addEventListener('click', function () { clear($('tail')); });
  $('filter').addEventListener('input', function () {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(function () {
      var text = $('filter').value.trim();
      if (text !== filter) {
        filter = text;
        applyFilter();
      }
    }, 300);
  });

  key = sessionStorage.getItem(KEY_ITEM);
  if (key) start(); else showLogin('');
})();
