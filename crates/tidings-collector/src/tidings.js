/* tidings.js, served by the tidings collector: tidings.track(name, props).
 * Batches go to the collector's /events as text/plain JSON: by fetch
 * keepalive, or by sendBeacon once the page is hidden or left. */
(function (w, d, nav) {
  'use strict';
  if (w.tidings && w.tidings.track) return;
  var MAX_EVENTS = 20; // flush at 20 queued events...
  var FLUSH_MS = 5000; // ...or 5 s after the first one
  var MAX_BYTES = 65536; // bodies stay under 64 KiB, the beacon/keepalive quota
  var s = d.currentScript;
  var cfg = {
    endpoint: new URL('events', (s && s.src) || location.href).href,
    writeKey: (s && s.getAttribute('data-write-key')) || null,
    context: {}
  };
  var queue = [];
  var timer = null;
  var inflight = 0; // bytes of our keepalive fetches not answered yet

  function warn(message, detail) {
    if (w.console) console.warn('tidings: ' + message, detail);
  }
  function target() {
    var k = cfg.writeKey;
    if (!k) return cfg.endpoint;
    return cfg.endpoint + (cfg.endpoint.indexOf('?') < 0 ? '?' : '&') + 'write_key=' + encodeURIComponent(k);
  }
  function size(text) {
    return new Blob([text]).size; // UTF-8 bytes
  }

  function track(name, properties) {
    var context = {};
    for (var key in cfg.context) context[key] = cfg.context[key];
    context.url = location.href;
    context.referrer = d.referrer;
    var c = w.crypto;
    queue.push({
      id: c && c.randomUUID ? c.randomUUID() : undefined,
      name: String(name),
      data: properties || {},
      timestamp: new Date().toISOString(),
      context: context
    });
    if (queue.length >= MAX_EVENTS) flush();
    else if (!timer) timer = setTimeout(flush, FLUSH_MS);
  }

  // JSON array bodies under MAX_BYTES of `events`, marked with `transport`.
  function bodies(events, transport) {
    var out = [];
    var b = null;
    for (var i = 0; i < events.length; i++) {
      events[i].context.transport = transport;
      var text = JSON.stringify(events[i]);
      var n = size(text);
      if (n + 2 >= MAX_BYTES) {
        warn('dropped an event over ' + MAX_BYTES + ' bytes', events[i].name);
      } else {
        if (!b || b.bytes + n + 1 >= MAX_BYTES) out.push((b = {events: [], texts: [], bytes: 1}));
        b.events.push(events[i]);
        b.texts.push(text);
        b.bytes += n + 1; // with its comma or the closing bracket
      }
    }
    return out.map(function (b) {
      return {events: b.events, text: '[' + b.texts.join(',') + ']'};
    });
  }

  function post(text) {
    var n = size(text);
    var keepalive = inflight + n < MAX_BYTES; // else a plain fetch: the page is still here
    if (keepalive) inflight += n;
    function done() {
      if (keepalive) inflight -= n;
    }
    fetch(target(), {
      method: 'POST',
      body: text,
      keepalive: keepalive,
      credentials: 'omit',
      headers: {'Content-Type': 'text/plain;charset=UTF-8'}
    }).then(function (r) {
      done();
      if (!r.ok) warn('the collector answered ' + r.status);
    }, function (e) {
      done();
      warn('sending events failed', e);
    });
  }

  // Sends the queue: by beacon when the page is hidden or `leaving`, else by fetch.
  function flush(leaving) {
    clearTimeout(timer);
    timer = null;
    var events = queue;
    queue = [];
    if (!events.length) return;
    var beacon = (leaving === true || d.visibilityState === 'hidden') && !!nav.sendBeacon;
    bodies(events, beacon ? 'beacon' : 'fetch').forEach(function (b) {
      var sent = false;
      try {
        sent = beacon && nav.sendBeacon(target(), b.text);
      } catch (e) {}
      if (!sent) post(beacon ? bodies(b.events, 'fetch')[0].text : b.text);
    });
  }

  function init(options) {
    var o = options || {};
    if (o.endpoint) cfg.endpoint = new URL(o.endpoint, location.href).href;
    if (o.writeKey !== undefined) cfg.writeKey = o.writeKey;
    if (o.context) cfg.context = o.context;
    return w.tidings;
  }

  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'hidden') flush(true);
  });
  w.addEventListener('pagehide', function () {
    flush(true);
  });
  w.tidings = {track: track, flush: function () { flush(); }, init: init};
})(window, document, navigator);
