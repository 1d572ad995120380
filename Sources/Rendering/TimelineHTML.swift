import Foundation
import JSON

/// `timeline.html`: one self-contained file (no network access) that reads like Wireshark's
/// flow graph at any size. Zoomed out, one lane per connection shows how many events fall in
/// each pixel row, coloured by their one-way delay, with findings marked; zoomed in, labelled
/// arrows run between the client and server columns. A time axis with units, wheel/button/key
/// zoom, drag pan, click a lane to fit its connection, a findings list (click, or n/p), search
/// by frame, CDC seqno or label text; `#connection=N`, `#finding=N` and `#search=TEXT` open
/// the page in that state.
///
/// The page only draws: the merge pipeline writes the events (`TimelineHTMLWriter`, in chunks
/// between `head` and `ending`) and the findings and clock model as one JSON object.
/// Layout of the file: docs/formats.md, "timeline.html".
public enum TimelineHTML {
  /// The file's start: styles and the page's fixed elements. Event chunks follow it.
  public static let head = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>smcpair timeline</title>
    <style>
    body{margin:0;font:13px system-ui,sans-serif;color:#222;display:flex;flex-direction:column;height:100vh}
    header{padding:5px 10px;background:#f3f4f6;border-bottom:1px solid #ddd;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
    header button{font:inherit;padding:1px 7px}
    main{flex:1;display:flex;min-height:0}
    #wrap{flex:1;position:relative}
    canvas{position:absolute;inset:0;width:100%;height:100%;cursor:grab}
    aside{width:340px;border-left:1px solid #ddd;display:flex;flex-direction:column;font-family:ui-monospace,monospace;font-size:12px}
    #details{padding:8px;white-space:pre-wrap;border-bottom:1px solid #ddd;min-height:90px}
    #findings{margin:0;padding:4px 8px 8px 32px;overflow:auto;flex:1}
    #findings li{cursor:pointer;padding:2px 0}#findings li.sel{background:#fee2e2}
    #findings-title{padding:4px 8px;font-weight:bold}
    .k0{color:#6b7280}.k1{color:#7c3aed}.k2{color:#2563eb}.k3{color:#059669}
    #search{width:230px}
    </style></head><body>
    <header>
      <b>smcpair</b><span id="model"></span>
      <span><button id="zoom-in" title="zoom in (+)">+</button><button id="zoom-out" title="zoom out (-)">&minus;</button><button id="fit" title="whole capture (0)">fit</button></span>
      <label>connection <select id="conn"><option value="-1">all</option></select></label>
      <span id="layers"></span>
      <span><button id="prev" title="previous finding (p)">&lsaquo;</button><button id="next" title="next finding (n)">&rsaquo;</button></span>
      <input id="search" type="search" placeholder="frame, CDC seqno or label text (Enter)">
      <span id="status">loading</span>
    </header>
    <main><div id="wrap"><canvas id="c"></canvas></div><aside><div id="details">Wheel, +/- or the buttons: zoom; drag or arrow keys: pan; click a lane: fit its connection; click an arrow: details; n/p: next/previous finding.</div><div id="findings-title"></div><ol id="findings"></ol></aside></main>

    """#

  /// The opening tag of one chunk of events: `base` is the nanosecond time its times count
  /// from (decimal text: it does not fit a JavaScript number), `count` its number of events,
  /// `bytes` the length of its columns before compression.
  public static func chunkOpening(base: Int64, count: Int, bytes: Int) -> String {
    "<script type=\"application/x-smcpair-events\" data-base=\"\(base)\" data-count=\"\(count)\" data-bytes=\"\(bytes)\">"
  }

  /// Closes a chunk opened with `chunkOpening`.
  public static let chunkClosing = "</script>\n"

  /// The file's end: `metadata` (the JSON object with names, connections, findings and clock
  /// model), the page's program and the closing tags.
  public static func ending(metadata: String) -> String {
    "<script type=\"application/json\" id=\"timeline-meta\">"
      + metadata.replacingOccurrences(of: "</", with: "<\\/")
      + "</script>\n<script>\n" + program + "</script></body></html>\n"
  }

  /// A JSON string for the page's script: `<` escaped as well, so no text can close the script.
  public static func jsonString(_ s: String) -> String {
    JSONValue.quoted(s).replacingOccurrences(of: "<", with: "\\u003c")
  }

  static let program = #"""
    "use strict";
    // Where the time to the first complete render goes (dataset: parse, decode, index, draw).
    const started = performance.now();
    const M = JSON.parse(document.getElementById("timeline-meta").textContent);
    const body = document.body, canvas = document.getElementById("c"), ctx = canvas.getContext("2d");
    const $ = id => document.getElementById(id);
    // ---- the event table: chunks of little-endian columns (docs/formats.md) ----
    const fromBase64 = Uint8Array.fromBase64 ? s => Uint8Array.fromBase64(s)
      : s => { const b = atob(s), u = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u; };
    const chunks = document.querySelectorAll('script[type="application/x-smcpair-events"]');
    let n = 0, base = null;
    for (const el of chunks) { n += +el.dataset.count; const b = BigInt(el.dataset.base); if (base === null || b < base) base = b; }
    if (base === null) base = 0n;
    const send = new Float64Array(n), recv = new Float64Array(n), delay = new Float64Array(n), unc = new Float32Array(n);
    const lane = new Uint32Array(n), cframe = new Uint32Array(n), sframe = new Uint32Array(n), kind = new Uint8Array(n);
    const labelStart = new Uint32Array(n + 1), labelParts = [];
    let labelTotal = 0, at = 0;
    // Raw DEFLATE with the fixed Huffman code (all the writer makes), unpacked synchronously.
    const fixedLit = new Uint16Array(512), fixedDist = new Uint8Array(32);
    {
      const rev = (v, bits) => { let r = 0; for (let b = 0; b < bits; b++) { r = r << 1 | v & 1; v >>= 1; } return r; };
      const put = (sym, code, bits) => { const r = rev(code, bits); for (let x = r; x < 512; x += 1 << bits) fixedLit[x] = sym << 4 | bits; };
      for (let s = 0; s < 288; s++) s < 144 ? put(s, 0x30 + s, 8) : s < 256 ? put(s, 0x190 + s - 144, 9) : s < 280 ? put(s, s - 256, 7) : put(s, 0xC0 + s - 280, 8);
      for (let d = 0; d < 32; d++) fixedDist[rev(d, 5)] = d;
    }
    const lenBase = Int32Array.of(3,4,5,6,7,8,9,10,11,13,15,17,19,23,27,31,35,43,51,59,67,83,99,115,131,163,195,227,258), lenExtra = Int32Array.of(0,0,0,0,0,0,0,0,1,1,1,1,2,2,2,2,3,3,3,3,4,4,4,4,5,5,5,5,0);
    const distBase = Int32Array.of(1,2,3,4,5,7,9,13,17,25,33,49,65,97,129,193,257,385,513,769,1025,1537,2049,3073,4097,6145,8193,12289,16385,24577), distExtra = Int32Array.of(0,0,0,0,1,1,2,2,3,3,4,4,5,5,6,6,7,7,8,8,9,9,10,10,11,11,12,12,13,13);
    function inflateFixed(src, size) {
      const out = new Uint8Array(size), n = src.length;
      let p = 0, buf = 0, cnt = 0, o = 0, last = 0;
      // The bit buffer keeps 24 to 31 bits: enough for a length or a distance with its extra bits.
      while (!last) {
        while (cnt < 24) { buf |= (p < n ? src[p++] : 0) << cnt; cnt += 8; }
        last = buf & 1; if ((buf >>> 1 & 3) !== 1) throw new Error("timeline.html: a chunk is not fixed-Huffman deflate"); buf >>>= 3; cnt -= 3;
        for (;;) {
          while (cnt < 24) { buf |= (p < n ? src[p++] : 0) << cnt; cnt += 8; }
          const e = fixedLit[buf & 511], bits = e & 15, sym = e >> 4; buf >>>= bits; cnt -= bits;
          if (sym < 256) { out[o++] = sym; continue; }
          if (sym === 256) break;
          const li = sym - 257, le = lenExtra[li], len = lenBase[li] + (buf & ((1 << le) - 1)); buf >>>= le; cnt -= le;
          while (cnt < 24) { buf |= (p < n ? src[p++] : 0) << cnt; cnt += 8; }
          const di = fixedDist[buf & 31]; buf >>>= 5; cnt -= 5;
          const de = distExtra[di], dist = distBase[di] + (buf & ((1 << de) - 1)); buf >>>= de; cnt -= de;
          if (dist >= len && len > 16) { out.copyWithin(o, o - dist, o - dist + len); o += len; }
          else for (let k = 0; k < len; k++, o++) out[o] = out[o - dist];
        }
      }
      if (o !== size) throw new Error("timeline.html: a chunk unpacks to " + o + " bytes, not " + size);
      return out;
    }
    for (const el of chunks) {
      const c = +el.dataset.count, shift = Number(BigInt(el.dataset.base) - base);
      const raw = inflateFixed(fromBase64(el.textContent), +el.dataset.bytes), buf = raw.buffer;
      const step = new Float64Array(buf, 0, c), flight = new Float64Array(buf, 8 * c, c), fix = new Float64Array(buf, 16 * c, c);
      const fstep = new Uint32Array(buf, 32 * c, c), fserver = new Uint32Array(buf, 36 * c, c), lens = new Uint32Array(buf, 40 * c, c);
      let t = shift, f = 0, l = labelTotal;
      for (let i = 0; i < c; i++) {
        t += step[i]; send[at + i] = t; recv[at + i] = t + flight[i]; delay[at + i] = flight[i] + fix[i];
        f = (f + fstep[i]) >>> 0; cframe[at + i] = f; sframe[at + i] = (f + fserver[i]) >>> 0;
        l += lens[i]; labelStart[at + i + 1] = l;
      }
      unc.set(new Float32Array(buf, 24 * c, c), at); lane.set(new Uint32Array(buf, 28 * c, c), at); kind.set(new Uint8Array(buf, 44 * c, c), at);
      const text = new Uint8Array(buf, 45 * c, raw.length - 45 * c);
      labelParts.push(text); labelTotal += text.length; at += c;
    }
    const labels = new Uint8Array(labelTotal);
    { let p = 0; for (const part of labelParts) { labels.set(part, p); p += part.length; } labelParts.length = 0; }
    const utf8 = new TextDecoder();
    const decoded = performance.now();
    const label = i => utf8.decode(labels.subarray(labelStart[i], labelStart[i + 1]));
    const L = M.connections.length;
    // ---- indexes: events by send-time bucket (a counting sort: events come in any order) ----
    let sMin = Infinity, sMax = -Infinity, tMin = Infinity, tMax = -Infinity, maxFwd = 0, maxBack = 0;
    const connMin = new Float64Array(L).fill(Infinity), connMax = new Float64Array(L).fill(-Infinity), connCount = new Uint32Array(L);
    for (let i = 0; i < n; i++) {
      const s = send[i], r = recv[i], a = s < r ? s : r, b = s < r ? r : s, c = lane[i];
      if (s < sMin) sMin = s; if (s > sMax) sMax = s; if (a < tMin) tMin = a; if (b > tMax) tMax = b;
      if (r - s > maxFwd) maxFwd = r - s; if (s - r > maxBack) maxBack = s - r;
      if (a < connMin[c]) connMin[c] = a; if (b > connMax[c]) connMax[c] = b; connCount[c]++;
    }
    if (n === 0) { sMin = sMax = tMin = 0; tMax = 1000; }
    const B = Math.max(1, Math.min(65536, n)), bw = (sMax - sMin) / B || 1;
    const bucketOf = t => { const b = Math.floor((t - sMin) / bw); return b < 0 ? 0 : b >= B ? B - 1 : b; };
    const bstart = new Uint32Array(B + 1), order = new Uint32Array(n);
    for (let i = 0; i < n; i++) bstart[bucketOf(send[i]) + 1]++;
    for (let b = 0; b < B; b++) bstart[b + 1] += bstart[b];
    { const fill = bstart.slice(0, B); for (let i = 0; i < n; i++) order[fill[bucketOf(send[i])]++] = i; }
    // Typical and high delays (from a sample) set the density's colour scale.
    let d50 = 1, d99 = 2;
    if (n > 0) {
      const k = Math.min(n, 20001), sample = new Float64Array(k);
      for (let j = 0; j < k; j++) sample[j] = Math.abs(recv[Math.floor(j * n / k)] - send[Math.floor(j * n / k)]);
      sample.sort(); d50 = Math.max(1, sample[k >> 1]); d99 = Math.max(d50 * 1.5, sample[Math.floor(k * 0.99)]);
    }
    const findings = M.findings.map((f, i) => ({ ...f, i, t: f.time_ns === null ? null : Number(BigInt(f.time_ns) - base) }));
    const indexed = performance.now();
    // ---- view state ----
    const kindNames = M.kinds, colors = ["#6b7280", "#7c3aed", "#2563eb", "#059669"];
    const shown = [true, true, true, true];
    const ARROWS = 2000, AX = 84, TOP = 42, BOTTOM = 10;
    let v0 = 0, v1 = 1, focus = -1, selected = -1, picked = -1, hits = [], hit = -1;
    let drawnArrows = [], densityLanes = 0, laneWidth = 1, view = "";
    const origin = tMin;
    function fitAll() { focus = -1; const pad = (tMax - tMin) * 0.03 + 1000; v0 = tMin - pad; v1 = tMax + pad; $("conn").value = "-1"; }
    function fitRange(a, b) { const pad = (b - a) * 0.08 + 200; v0 = a - pad; v1 = b + pad; }
    function fitConnection(c) { if (!(c >= 0 && c < L) || connCount[c] === 0) return; focus = c; $("conn").value = String(c); fitRange(connMin[c], connMax[c]); draw(); }
    const plotH = h => h - TOP - BOTTOM;
    const yOf = (t, h) => TOP + (t - v0) / (v1 - v0) * plotH(h);
    const tOf = (y, h) => v0 + (y - TOP) / plotH(h) * (v1 - v0);
    const visibleKind = i => shown[kind[i] & 3] && (focus < 0 || lane[i] === focus);
    // ---- time axis: 1-2-5 steps, unit from the step ----
    function units(step) { return step < 1e3 ? [1, "ns"] : step < 1e6 ? [1e3, "µs"] : step < 1e9 ? [1e6, "ms"] : [1e9, "s"]; }
    function formatDuration(ns) { const a = Math.abs(ns), [d, u] = units(a); return (ns / d).toFixed(a / d < 10 ? 2 : a / d < 100 ? 1 : 0) + " " + u; }
    function drawAxis(w, h) {
      const span = v1 - v0, raw = span / Math.max(2, plotH(h) / 55), p = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = raw / p < 2 ? 2 * p : raw / p < 5 ? 5 * p : 10 * p, [div, unit] = units(step);
      const decimals = Math.max(0, -Math.floor(Math.log10(step / div) + 1e-9));
      ctx.font = "11px ui-monospace,monospace"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
      let ticks = 0;
      for (let t = Math.ceil((v0 - origin) / step) * step + origin; t <= v1; t += step) {
        const y = yOf(t, h);
        ctx.strokeStyle = "#e5e7eb"; ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(AX, y); ctx.lineTo(w - 6, y); ctx.stroke();
        ctx.fillStyle = "#374151"; ctx.fillText(((t - origin) / div).toFixed(decimals) + " " + unit, AX - 6, y);
        ticks++;
      }
      ctx.strokeStyle = "#9ca3af"; ctx.beginPath(); ctx.moveTo(AX, TOP); ctx.lineTo(AX, h - BOTTOM); ctx.stroke();
      ctx.textAlign = "left"; ctx.textBaseline = "alphabetic"; ctx.fillStyle = "#6b7280"; ctx.fillText("time", 6, TOP - 6);
      body.dataset.axis = ticks > 0 ? "drawn" : "none"; body.dataset.axisUnit = unit; body.dataset.ticks = String(ticks);
    }
    // ---- drawing ----
    let cells = null, cellDelay = null, image = null, off = null;
    function draw() {
      const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, h);
      const left = AX + 8, right = w - 8, rows = Math.max(1, Math.floor(plotH(h)));
      // Lanes: one per connection (or the focused one); many connections share a lane when narrow.
      const lanesWanted = focus >= 0 ? 1 : Math.max(1, L);
      densityLanes = Math.max(1, Math.min(lanesWanted, Math.floor((right - left) / 2)));
      laneWidth = (right - left) / densityLanes;
      const laneOf = focus >= 0 ? () => 0 : c => Math.floor(c * densityLanes / lanesWanted);
      if (!cells || cells.length !== densityLanes * rows) { cells = new Float32Array(densityLanes * rows); cellDelay = new Float32Array(densityLanes * rows); } else { cells.fill(0); cellDelay.fill(0); }
      const list = [];
      let count = 0;
      const b0 = bucketOf(v0 - maxFwd), b1 = bucketOf(v1 + maxBack), scale = rows / (v1 - v0);
      for (let j = bstart[b0], end = bstart[b1 + 1]; j < end; j++) {
        const i = order[j];
        if (!visibleKind(i)) continue;
        const s = send[i], r = recv[i];
        if ((s > r ? s : r) < v0 || (s < r ? s : r) > v1) continue;
        count++;
        if (list.length <= ARROWS) list.push(i);
        const row = Math.floor((s - v0) * scale);
        if (row >= 0 && row < rows) { const cell = laneOf(lane[i]) * rows + row; cells[cell]++; cellDelay[cell] += r - s; }
      }
      drawAxis(w, h);
      drawnArrows = [];
      let labelsDrawn = 0, densityEvents = 0;
      // Arrows and marks stay inside the plot: above it are the column names.
      ctx.save(); ctx.beginPath(); ctx.rect(AX + 1, TOP - 2, w - AX, plotH(h) + 4); ctx.clip();
      if (count > ARROWS) {
        view = "density";
        densityEvents = drawDensity(left, rows, dpr);
        $("status").textContent = count + " events here: zoom in to see arrows";
      } else {
        view = "arrows";
        labelsDrawn = drawArrows(list, w, h);
        $("status").textContent = count + " events in view";
      }
      drawFindings(w, h, left);
      ctx.restore();
      ctx.fillStyle = "#111"; ctx.font = "bold 13px system-ui"; ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
      const [xc, xs] = columns(w);
      if (view === "arrows") { ctx.fillText(M.client + " (client)", xc, 16); ctx.fillText(M.server + " (server)", xs, 16); }
      else { ctx.fillText(focus >= 0 ? M.connections[focus] : L + " connections" + (densityLanes < L ? " in " + densityLanes + " lanes (up to " + Math.ceil(L / densityLanes) + " per lane)" : ": one lane each"), (left + right) / 2, 16); }
      ctx.font = "11px system-ui"; ctx.fillStyle = "#6b7280";
      ctx.fillText(view === "arrows" ? (focus >= 0 ? M.connections[focus] : "all connections") : "shade: events per row · colour: one-way delay (blue typical " + formatDuration(d50) + ", orange ≥ " + formatDuration(d99) + ") · red: finding", (left + right) / 2, 32);
      Object.assign(body.dataset, { view, lanes: "2", connectionLanes: String(view === "density" ? densityLanes : 0), arrows: String(drawnArrows.length),
        labels: String(labelsDrawn), events: String(n), densityEvents: String(densityEvents), visible: String(count), focus: String(focus),
        selectedFinding: String(selected), picked: String(picked) });
    }
    function columns(w) { const left = AX + 8, right = w - 8, m = (right - left) * 0.16; return [left + m, right - m]; }
    function drawDensity(left, rows, dpr) {
      let max = 1, total = 0;
      for (let c = 0; c < cells.length; c++) { const v = cells[c]; if (v > max) max = v; total += v; }
      const lw = Math.max(1, Math.round(laneWidth)), W = densityLanes * lw;
      if (!off || off.width !== W || off.height !== rows) { off = document.createElement("canvas"); off.width = W; off.height = rows; image = off.getContext("2d").createImageData(W, rows); }
      const px = image.data; px.fill(0);
      const lmax = Math.log1p(max), l50 = Math.log(d50), lspan = Math.log(d99) - l50 || 1;
      for (let l = 0; l < densityLanes; l++) for (let r = 0; r < rows; r++) {
        const v = cells[l * rows + r]; if (!v) continue;
        const hot = Math.min(1, Math.max(0, (Math.log(Math.max(1, cellDelay[l * rows + r] / v)) - l50) / lspan));
        const R = 37 + (234 - 37) * hot, G = 99 + (88 - 99) * hot, Bl = 235 + (12 - 235) * hot, A = 255 * (0.3 + 0.7 * Math.log1p(v) / lmax);
        const gap = lw > 3 ? 1 : 0;
        for (let x = l * lw; x < (l + 1) * lw - gap; x++) { const p = (r * W + x) * 4; px[p] = R; px[p + 1] = G; px[p + 2] = Bl; px[p + 3] = A; }
      }
      off.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, left, TOP, densityLanes * laneWidth, rows);
      return total;
    }
    function drawArrows(list, w, h) {
      const [xc, xs] = columns(w);
      ctx.strokeStyle = "#111"; ctx.lineWidth = 2;
      for (const x of [xc, xs]) { ctx.beginPath(); ctx.moveTo(x, TOP - 4); ctx.lineTo(x, h - BOTTOM); ctx.stroke(); }
      list.sort((a, b) => send[a] - send[b]);
      let lastLabel = -Infinity, labelsDrawn = 0;
      ctx.font = "11px ui-monospace,monospace"; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
      for (const i of list) {
        const c2s = kind[i] & 0x80, fromX = c2s ? xc : xs, toX = c2s ? xs : xc, ys = yOf(send[i], h), yr = yOf(recv[i], h);
        const emphasis = i === picked || (hit >= 0 && hits[hit] === i);
        const color = emphasis ? "#dc2626" : colors[kind[i] & 3];
        ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = emphasis ? 2.5 : 1;
        ctx.beginPath(); ctx.moveTo(fromX, ys); ctx.lineTo(toX, yr); ctx.stroke();
        const ang = Math.atan2(yr - ys, toX - fromX);
        ctx.beginPath(); ctx.moveTo(toX, yr); ctx.lineTo(toX - 8 * Math.cos(ang - 0.4), yr - 8 * Math.sin(ang - 0.4)); ctx.lineTo(toX - 8 * Math.cos(ang + 0.4), yr - 8 * Math.sin(ang + 0.4)); ctx.fill();
        drawnArrows.push(i);
        // A label where it does not overlap the one above: Wireshark's flow graph text.
        const my = (ys + yr) / 2;
        if (my - lastLabel >= 13 || emphasis) {
          const u = unc[i];
          ctx.fillText(label(i) + "  " + formatDuration(recv[i] - send[i]) + (u === u && u > 0 ? " ±" + formatDuration(u) : ""), (xc + xs) / 2, my - 2);
          lastLabel = my; labelsDrawn++;
        }
      }
      return labelsDrawn;
    }
    function drawFindings(w, h, left) {
      const [xc, xs] = columns(w);
      for (const f of findings) {
        if (f.t === null || f.t < v0 || f.t > v1) continue;
        if (focus >= 0 && f.lane !== focus && f.i !== selected) continue;
        const y = yOf(f.t, h);
        ctx.fillStyle = "#dc2626";
        if (view === "arrows") { const x = f.side === "server" ? xs : f.side === "client" ? xc : (xc + xs) / 2; ctx.beginPath(); ctx.arc(x, y, f.i === selected ? 6 : 4, 0, 7); ctx.fill(); }
        else if (f.lane >= 0 && (focus < 0 || f.lane === focus)) { const l = focus >= 0 ? 0 : Math.floor(f.lane * densityLanes / Math.max(1, L)); ctx.fillRect(left + l * laneWidth, y - 1, Math.max(2, laneWidth - (laneWidth > 3 ? 1 : 0)), 2); }
        else ctx.fillRect(left, y - 0.5, w - 8 - left, 1);
        if (f.i === selected) {
          ctx.strokeStyle = "#dc2626"; ctx.setLineDash([5, 4]); ctx.lineWidth = 1; ctx.beginPath(); ctx.moveTo(AX, y); ctx.lineTo(w - 8, y); ctx.stroke(); ctx.setLineDash([]);
          ctx.font = "bold 11px system-ui"; ctx.textAlign = "left"; ctx.textBaseline = "bottom"; ctx.fillText(f.kind, AX + 4, y - 2);
        }
      }
    }
    // ---- navigation ----
    // The window around the events of one connection (or all, for -1) nearest to time t.
    function zoomAround(t, c, want) {
      const b = bucketOf(t);
      let lo = t, hi = t, found = 0;
      for (let d = 0; found < want && (b - d >= 0 || b + d < B); d++) {
        for (const bb of d === 0 ? [b] : [b - d, b + d]) {
          if (bb < 0 || bb >= B) continue;
          for (let j = bstart[bb]; j < bstart[bb + 1]; j++) {
            const i = order[j]; if (c >= 0 && lane[i] !== c) continue;
            found++; const s = send[i], r = recv[i];
            if (Math.min(s, r) < lo) lo = Math.min(s, r); if (Math.max(s, r) > hi) hi = Math.max(s, r);
          }
        }
      }
      focus = c; $("conn").value = String(c); fitRange(lo, Math.max(hi, lo + 1000));
    }
    function selectFinding(k) {
      if (findings.length === 0) return;
      selected = ((k % findings.length) + findings.length) % findings.length;
      const f = findings[selected];
      if (f.t !== null) zoomAround(f.t, f.lane, 16);
      for (const li of document.querySelectorAll("#findings li.sel")) li.classList.remove("sel");
      const li = document.querySelector('#findings li[data-i="' + selected + '"]');
      if (li) { li.classList.add("sel"); li.scrollIntoView({ block: "nearest" }); }
      $("details").textContent = [f.kind + " (" + f.side + ")", f.connection, f.t === null ? "no single time" : "at " + formatDuration(f.t - origin), f.message].join("\n");
      draw();
    }
    function pick(i) {
      picked = i;
      const u = unc[i];
      $("details").textContent = [label(i), kindNames[kind[i] & 3] + (kind[i] & 0x80 ? "  client → server" : "  server → client"), "connection " + M.connections[lane[i]],
        "sent     " + formatDuration(send[i] - origin), "received " + formatDuration(recv[i] - origin),
        "one-way delay " + formatDuration(delay[i]) + (u === u ? " ± " + formatDuration(u) : ""), "client frame " + cframe[i] + ", server frame " + sframe[i]].join("\n");
    }
    function zoom(f, t) { if (t === undefined) t = (v0 + v1) / 2; v0 = t - (t - v0) * f; v1 = t + (v1 - t) * f; if (v1 - v0 < 20) { const m = (v0 + v1) / 2; v0 = m - 10; v1 = m + 10; } draw(); }
    function pan(fraction) { const d = (v1 - v0) * fraction; v0 += d; v1 += d; draw(); }
    // ---- search: frame number, CDC seqno (#N in a label) or label text ----
    let labelText = null;
    function eventAtLabelByte(p) { let lo = 0, hi = n - 1; while (lo < hi) { const m = (lo + hi + 1) >> 1; if (labelStart[m] <= p) lo = m; else hi = m - 1; } return lo; }
    function search(q) {
      q = q.trim(); hits = []; hit = -1;
      if (q === "") { draw(); return; }
      const found = new Set();
      if (/^\d+$/.test(q)) { const f = +q; for (let i = 0; i < n; i++) if (cframe[i] === f || sframe[i] === f) found.add(i); }
      if (labelText === null) labelText = new TextDecoder("latin1").decode(labels).toLowerCase();
      const needle = new TextDecoder("latin1").decode(new TextEncoder().encode(/^\d+$/.test(q) ? "#" + q : q)).toLowerCase();
      for (let p = labelText.indexOf(needle); p >= 0 && found.size < 100000; p = labelText.indexOf(needle, p + 1)) {
        const i = eventAtLabelByte(p), after = labelText.charCodeAt(p + needle.length);
        if (/^\d+$/.test(q) && p + needle.length < labelStart[i + 1] && after >= 48 && after <= 57) continue;
        found.add(i); p = labelStart[i + 1] - 1;
      }
      hits = Array.from(found).sort((a, b) => send[a] - send[b]);
      body.dataset.searchHits = String(hits.length);
      if (hits.length === 0) { $("status").textContent = "no match for " + q; return; }
      nextHit();
    }
    function nextHit() {
      if (hits.length === 0) return;
      hit = (hit + 1) % hits.length; const i = hits[hit];
      pick(i); zoomAround(send[i], lane[i], 12); draw();
      $("status").textContent += " · match " + (hit + 1) + " of " + hits.length;
    }
    // ---- controls ----
    {
      const m = M.model;
      $("model").textContent = m ? "clock: server = client " + (m.offset_ns >= 0 ? "+" : "") + formatDuration(m.offset_ns) + (m.lower_ns !== null && m.upper_ns !== null ? " [" + formatDuration(m.lower_ns) + ", " + formatDuration(m.upper_ns) + "]" : "") + ", skew " + m.skew_ppm + " ppm, " + m.verdict : "no clock model";
      body.dataset.verdict = m ? m.verdict : "";
      const sel = $("conn");
      M.connections.forEach((c, i) => { const o = document.createElement("option"); o.value = i; o.textContent = c + " (" + connCount[i] + ")"; sel.appendChild(o); });
      sel.onchange = e => { const c = +e.target.value; if (c < 0) { fitAll(); draw(); } else fitConnection(c); };
      kindNames.forEach((k, i) => { const l = document.createElement("label"); l.className = "k" + i; l.innerHTML = '<input type="checkbox" checked> ' + k + " "; l.firstChild.onchange = e => { shown[i] = e.target.checked; draw(); }; $("layers").appendChild(l); });
      $("findings-title").textContent = findings.length + " finding" + (findings.length === 1 ? "" : "s") + (findings.length ? " (n / p)" : "");
      const list = $("findings"), frag = document.createDocumentFragment();
      for (const f of findings.slice(0, 2000)) { const li = document.createElement("li"); li.dataset.i = f.i; li.textContent = f.kind + " " + f.connection + (f.t === null ? "" : " @" + formatDuration(f.t - origin)); li.title = f.message; frag.appendChild(li); }
      if (findings.length > 2000) { const li = document.createElement("li"); li.textContent = (findings.length - 2000) + " more: n / p reach them"; frag.appendChild(li); }
      list.appendChild(frag);
      list.onclick = e => { const li = e.target.closest("li[data-i]"); if (li) selectFinding(+li.dataset.i); };
      $("zoom-in").onclick = () => zoom(0.5); $("zoom-out").onclick = () => zoom(2); $("fit").onclick = () => { fitAll(); draw(); };
      $("next").onclick = () => selectFinding(selected + 1); $("prev").onclick = () => selectFinding(selected < 0 ? -1 : selected - 1);
      $("search").addEventListener("keydown", e => { if (e.key === "Enter") { e.preventDefault(); if (e.target.value === lastQuery && hits.length) nextHit(); else { lastQuery = e.target.value; search(lastQuery); } } e.stopPropagation(); });
    }
    let lastQuery = "";
    const controlled = performance.now();
    window.addEventListener("keydown", e => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key;
      if (k === "n") selectFinding(selected + 1); else if (k === "p") selectFinding(selected < 0 ? -1 : selected - 1);
      else if (k === "+" || k === "=") zoom(0.5); else if (k === "-") zoom(2);
      else if (k === "0" || k === "Home") { fitAll(); draw(); } else if (k === "Escape") { picked = -1; hits = []; hit = -1; fitAll(); draw(); }
      else if (k === "ArrowDown" || k === "PageDown") pan(k === "PageDown" ? 0.9 : 0.2); else if (k === "ArrowUp" || k === "PageUp") pan(k === "PageUp" ? -0.9 : -0.2);
      else if (k === "/") { $("search").focus(); } else return;
      e.preventDefault();
    });
    canvas.addEventListener("wheel", e => { e.preventDefault(); zoom(e.deltaY > 0 ? 1.25 : 0.8, tOf(e.offsetY, canvas.clientHeight)); }, { passive: false });
    let dragY = null, dragged = false;
    canvas.addEventListener("mousedown", e => { dragY = e.offsetY; dragged = false; });
    window.addEventListener("mouseup", () => { dragY = null; });
    canvas.addEventListener("mousemove", e => {
      if (dragY === null) {
        if (view === "density" && focus < 0 && L > 0) { const l = Math.floor((e.offsetX - AX - 8) / laneWidth); const c = Math.floor(l * L / densityLanes); canvas.title = l >= 0 && l < densityLanes ? M.connections[Math.min(L - 1, c)] + (densityLanes < L ? " and neighbours" : "") : ""; }
        return;
      }
      const dt = (e.offsetY - dragY) / plotH(canvas.clientHeight) * (v1 - v0); if (Math.abs(e.offsetY - dragY) > 2) dragged = true;
      v0 -= dt; v1 -= dt; dragY = e.offsetY; draw();
    });
    canvas.addEventListener("click", e => {
      if (dragged) return;
      const w = canvas.clientWidth, h = canvas.clientHeight;
      if (view === "density") {
        const l = Math.floor((e.offsetX - AX - 8) / laneWidth);
        if (l < 0 || l >= densityLanes) return;
        if (focus < 0 && densityLanes === L) fitConnection(l); else zoom(0.25, tOf(e.offsetY, h));
        return;
      }
      const [xc, xs] = columns(w); let best = -1, bestD = 6;
      for (const i of drawnArrows) {
        const x1 = kind[i] & 0x80 ? xc : xs, x2 = kind[i] & 0x80 ? xs : xc, y1 = yOf(send[i], h), y2 = yOf(recv[i], h);
        const len = Math.hypot(x2 - x1, y2 - y1) || 1, u = Math.max(0, Math.min(1, ((e.offsetX - x1) * (x2 - x1) + (e.offsetY - y1) * (y2 - y1)) / (len * len)));
        const d = Math.hypot(e.offsetX - (x1 + u * (x2 - x1)), e.offsetY - (y1 + u * (y2 - y1)));
        if (d < bestD) { bestD = d; best = i; }
      }
      if (best >= 0) { pick(best); draw(); }
    });
    window.addEventListener("resize", draw);
    // ---- start: the whole capture, or the state the address asks for ----
    function applyHash() {
      const p = new URLSearchParams(location.hash.slice(1));
      fitAll();
      if (p.has("connection")) fitConnection(+p.get("connection"));
      if (p.has("finding")) selectFinding(+p.get("finding"));
      if (p.has("search")) { $("search").value = lastQuery = p.get("search"); search(lastQuery); }
      draw();
    }
    window.addEventListener("hashchange", applyHash);
    applyHash();
    {
      const done = performance.now();
      Object.assign(body.dataset, { parseMs: String(Math.round(started)), decodeMs: String(Math.round(decoded - started)),
        indexMs: String(Math.round(indexed - decoded)), controlsMs: String(Math.round(controlled - indexed)),
        drawMs: String(Math.round(done - controlled)), renderMs: String(Math.round(done)) });
    }
    """#
}
