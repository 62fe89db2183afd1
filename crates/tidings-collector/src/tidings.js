/* tidings.js, served by the tidings collector (docs/browser.md).
 * tidings.track(name, props) and tachyon's tidings.reportEvent({event,
 * properties}) go to the installed reporters: by default the collector's
 * /events, batched as text/plain JSON, by fetch keepalive, or by sendBeacon
 * once the page is hidden or left. tidings.reporters builds others (console,
 * spade, flume, multi); tidings.init({reporters: [...]}) installs them. */
(function (w, d, nav) {
  'use strict';
  if (w.tidings && w.tidings.track) return;
  var MAX_EVENTS = 20; // a batch is sent at 20 queued events...
  var FLUSH_MS = 5000; // ...or 5 s after the first one
  var MAX_BYTES = 65536; // bodies stay under 64 KiB, the beacon/keepalive quota
  var FORM = 'application/x-www-form-urlencoded';
  var s = d.currentScript;
  var base = (s && s.src) || location.href; // the collector's routes are next to the script
  var cfg = {
    endpoint: new URL('events', base).href,
    writeKey: (s && s.getAttribute('data-write-key')) || null,
    context: {}
  };
  var inflight = 0; // bytes of keepalive fetches not answered yet: one quota per page
  var batches = []; // every batching reporter's flush, called when the page is hidden or left
  var left = false; // after pagehide, fetch promises reject though keepalive requests go on

  function warn(message, detail) {
    if (w.console) console.warn('tidings: ' + message, detail);
  }
  function withKey(url, key) {
    if (!key) return url;
    return url + (url.indexOf('?') < 0 ? '?' : '&') + 'write_key=' + encodeURIComponent(key);
  }
  function size(text) {
    return new Blob([text]).size; // UTF-8 bytes
  }
  function isObject(v) {
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  }

  // POSTs `text`: with keepalive while the page's 64 KiB quota allows, else
  // as a plain fetch (the page is still here).
  function post(url, text, type, credentials) {
    var n = size(text);
    var keepalive = inflight + n < MAX_BYTES;
    if (keepalive) inflight += n;
    function done() {
      if (keepalive) inflight -= n;
    }
    fetch(url, {
      method: 'POST',
      body: text,
      keepalive: keepalive,
      credentials: credentials || 'omit',
      headers: {'Content-Type': type}
    }).then(function (r) {
      done();
      if (!r.ok) warn(url + ' answered ' + r.status);
    }, function (e) {
      done();
      if (!left) warn('sending events failed', e);
    });
  }

  // A queue sent at `o.max` items or `o.ms` after the first: by fetch, or by
  // beacon when the page is hidden or `leaving`. `o.url()` is where,
  // `o.encode(items, transport)` a body, `o.type` a fetch's content type.
  function batcher(o) {
    var queue = [];
    var timer = null;
    // As many items per body as fit under MAX_BYTES; an item too big alone is dropped.
    function bodies(items, transport) {
      var out = [];
      var chunk = [];
      var text = '';
      items.forEach(function (item) {
        for (;;) {
          var t = o.encode(chunk.concat([item]), transport);
          if (size(t) < MAX_BYTES) {
            chunk.push(item);
            text = t;
            return;
          }
          if (!chunk.length) return warn('dropped an event over ' + MAX_BYTES + ' bytes', o.name(item));
          out.push({items: chunk, text: text});
          chunk = [];
        }
      });
      if (chunk.length) out.push({items: chunk, text: text});
      return out;
    }
    function flush(leaving) {
      clearTimeout(timer);
      timer = null;
      var items = queue;
      queue = [];
      if (!items.length) return;
      var beacon = (leaving === true || d.visibilityState === 'hidden') && !!nav.sendBeacon;
      var url = o.url();
      bodies(items, beacon ? 'beacon' : 'fetch').forEach(function (b) {
        var sent = false;
        try {
          sent = beacon && nav.sendBeacon(url, b.text);
        } catch (e) {}
        if (!sent) post(url, beacon ? o.encode(b.items, 'fetch') : b.text, o.type);
      });
    }
    batches.push(flush);
    return {
      add: function (item) {
        queue.push(item);
        if (queue.length >= o.max) flush();
        else if (!timer) timer = setTimeout(flush, o.ms);
      },
      flush: flush
    };
  }

  // The collector's /events: tidings events with an id, a timestamp and the
  // page's url and referrer in their context. Unset options follow init's.
  function events(options) {
    var o = options || {};
    function opt(key) {
      return o[key] !== undefined ? o[key] : cfg[key];
    }
    var b = batcher({
      max: o.batchSize || MAX_EVENTS,
      ms: o.flushInterval || FLUSH_MS,
      type: 'text/plain;charset=UTF-8',
      url: function () {
        return withKey(o.endpoint ? new URL(o.endpoint, location.href).href : cfg.endpoint, opt('writeKey'));
      },
      encode: function (events, transport) {
        events.forEach(function (e) {
          e.context.transport = transport;
        });
        return JSON.stringify(events);
      },
      name: function (e) {
        return e.name;
      }
    });
    function report(e) {
      var context = {};
      var extra = opt('context') || {};
      for (var key in extra) context[key] = extra[key];
      context.url = location.href;
      context.referrer = d.referrer;
      var c = w.crypto;
      b.add({
        id: c && c.randomUUID ? c.randomUUID() : undefined,
        name: String(e.event),
        data: e.properties || {},
        timestamp: new Date().toISOString(),
        context: context
      });
    }
    report.flush = b.flush;
    return report;
  }

  function base64(text) {
    var bytes = new TextEncoder().encode(text);
    var binary = '';
    for (var i = 0; i < bytes.length; i += 8192) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    }
    return btoa(binary);
  }

  // Spade: {event, properties} arrays, base64 JSON in form field `data`.
  // `url` is a string, or a function asked at each send (a URL provider):
  // when it throws or gives nothing, the last URL it gave is used, then the
  // collector's /spade.
  function spade(options) {
    var o = options || {};
    var fallback = new URL('spade', base).href;
    var good = null;
    function where() {
      var u = o.url;
      if (typeof u === 'function') {
        try {
          u = u();
        } catch (e) {
          warn('the Spade URL provider failed', e);
          u = null;
        }
        if (u) good = u;
      }
      var key = o.writeKey;
      if (!u && !good && key === undefined) key = cfg.writeKey; // the collector's key for its /spade
      return withKey(new URL(u || good || fallback, location.href).href, key);
    }
    var b = batcher({
      max: o.batchSize || MAX_EVENTS,
      ms: o.flushInterval || FLUSH_MS,
      type: FORM,
      url: where,
      encode: function (items) {
        return 'data=' + encodeURIComponent(base64(JSON.stringify(items)));
      },
      name: function (e) {
        return e.event;
      }
    });
    function report(e) {
      b.add({event: String(e.event), properties: e.properties || {}});
    }
    report.flush = b.flush;
    return report;
  }

  // Keeps only the allowed paths of `value` ("a.b" reaches into objects).
  function pick(value, node) {
    var out = {};
    if (!isObject(value)) return out;
    Object.keys(value).forEach(function (key) {
      var child = node[key];
      if (!child) return;
      if (child.whole) out[key] = value[key];
      else if (isObject(value[key])) out[key] = pick(value[key], child.children);
    });
    return out;
  }

  // The flume mirror: one url-encoded POST per event, field `data` = the
  // event's JSON with only `allowedProperties`, to a path of the page's origin.
  function flume(options) {
    var o = options || {};
    var url = new URL(o.path || '/flume', location.href);
    if (url.origin !== location.origin) {
      warn('a flume path must be on the page\'s origin; the mirror is off', url.href);
      return function () {};
    }
    var allowed = Object.create(null);
    (o.allowedProperties || []).forEach(function (path) {
      var parts = String(path).split('.');
      if (parts.indexOf('') >= 0) return warn('not a property path', path);
      var node = allowed;
      parts.forEach(function (part, i) {
        var child = node[part] || (node[part] = {whole: false, children: Object.create(null)});
        if (i === parts.length - 1) child.whole = true;
        node = child.children;
      });
    });
    return function (e) {
      var json = JSON.stringify({event: String(e.event), properties: pick(e.properties, allowed)});
      post(url.href, 'data=' + encodeURIComponent(json), FORM, 'same-origin');
    };
  }

  // Each event logged to the console, for development.
  function consoleReporter() {
    return function (e) {
      if (w.console) console.info('tidings: ' + e.event, e.properties);
    };
  }

  // Fan-out: every event to each reporter; one throwing stops none of the others.
  function multi(list) {
    var reporters = [];
    (list || []).forEach(function (r) {
      if (typeof r === 'function') reporters.push(r);
      else warn('not a reporter', r);
    });
    function each(call) {
      reporters.forEach(function (r) {
        try {
          call(r);
        } catch (err) {
          warn('a reporter failed', err);
        }
      });
    }
    function report(e) {
      each(function (r) {
        r(e);
      });
    }
    report.flush = function (leaving) {
      each(function (r) {
        if (r.flush) r.flush(leaving);
      });
    };
    return report;
  }

  var current = events(); // the installed reporter

  function dispatch(e) {
    try {
      current(e);
    } catch (err) {
      warn('a reporter failed', err);
    }
  }

  function track(name, properties) {
    dispatch({event: String(name), properties: properties || {}});
  }

  // tachyon's call: {event: name, properties: {...}}. A bad argument is
  // warned about and dropped.
  function reportEvent(e) {
    if (!e || typeof e.event !== 'string' || !e.event) {
      return warn('reportEvent takes {event: "name", properties: {...}}; dropped', e);
    }
    if (e.properties != null && !isObject(e.properties)) {
      return warn('properties must be an object; dropped', e.event);
    }
    dispatch({event: e.event, properties: e.properties || {}});
  }

  function flush() {
    batches.forEach(function (f) {
      f();
    });
  }

  function init(options) {
    var o = options || {};
    if (o.endpoint) cfg.endpoint = new URL(o.endpoint, location.href).href;
    if (o.writeKey !== undefined) cfg.writeKey = o.writeKey;
    if (o.context) cfg.context = o.context;
    if (o.reporters) current = typeof o.reporters === 'function' ? o.reporters : multi(o.reporters);
    return w.tidings;
  }

  function leave() {
    batches.forEach(function (f) {
      f(true);
    });
  }
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'hidden') leave();
  });
  w.addEventListener('pagehide', function () {
    left = true;
    leave();
  });
  w.addEventListener('pageshow', function () {
    left = false; // back from the back/forward cache
  });
  w.tidings = {
    track: track,
    reportEvent: reportEvent,
    flush: flush,
    init: init,
    reporters: {events: events, spade: spade, flume: flume, console: consoleReporter, multi: multi}
  };
})(window, document, navigator);
