import Foundation
import JSON

/// `timeline.html`: one self-contained file (no network access) with a ladder diagram: the
/// two hosts as lanes, one arrow per paired message sloped by its delay, zoom and pan,
/// filters by connection and layer, details on click, findings marked. Data is embedded in
/// columns (numbers, not objects) so that a million events stay loadable; when zoomed out,
/// arrows are aggregated into per-pixel-row density bars.
///
/// The page only draws: the merge pipeline computes the data (times on the reference clock,
/// pairs, findings) and hands it in as one JSON object.
public enum TimelineHTML {
  /// The page with `data` (the timeline's JSON object) embedded in its script.
  public static func page(embedding data: String) -> String {
    template.replacingOccurrences(of: "/*DATA*/", with: data.replacingOccurrences(of: "</", with: "<\\/"))
  }

  /// A JSON string for the page's script: `<` escaped as well, so no text can close the script.
  public static func jsonString(_ s: String) -> String {
    JSONValue.quoted(s).replacingOccurrences(of: "<", with: "\\u003c")
  }

  static let template = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>smcpair timeline</title>
    <style>
    body{margin:0;font:13px system-ui,sans-serif;color:#222;display:flex;flex-direction:column;height:100vh}
    header{padding:6px 10px;background:#f3f4f6;border-bottom:1px solid #ddd;display:flex;gap:14px;align-items:center;flex-wrap:wrap}
    main{flex:1;display:flex;min-height:0}
    #wrap{flex:1;position:relative}
    canvas{position:absolute;inset:0;width:100%;height:100%;cursor:grab}
    aside{width:320px;border-left:1px solid #ddd;padding:8px;overflow:auto;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
    .k0{color:#6b7280}.k1{color:#7c3aed}.k2{color:#2563eb}.k3{color:#059669}
    </style></head><body>
    <header>
      <b>smcpair</b><span id="model"></span>
      <label>connection <select id="conn"><option value="-1">all</option></select></label>
      <span id="layers"></span>
      <span id="status"></span>
    </header>
    <main><div id="wrap"><canvas id="c"></canvas></div><aside id="details">Click an arrow for details. Wheel: zoom; drag: pan.</aside></main>
    <script>
    "use strict";
    const D = /*DATA*/;
    const colors = ["#6b7280", "#7c3aed", "#2563eb", "#059669"];
    const n = D.send.length;
    const shown = [true, true, true, true];
    let connFilter = -1;
    const canvas = document.getElementById("c"), ctx = canvas.getContext("2d");
    let t0 = 0, t1 = 1;
    // Loops, not Math.min(...array): spreading a million numbers overflows the stack.
    if (n > 0) { t0 = Infinity; t1 = -Infinity; for (let i = 0; i < n; i++) { const a = D.send[i], b = D.recv[i]; if (a < t0) t0 = a; if (b < t0) t0 = b; if (a > t1) t1 = a; if (b > t1) t1 = b; } }
    const pad = (t1 - t0) * 0.03 + 1000; t0 -= pad; t1 += pad;
    const m = D.model;
    document.getElementById("model").textContent = "clock: server = client " + (m.offset_ns >= 0 ? "+" : "") + (m.offset_ns / 1000).toFixed(1) + " µs, skew " + m.skew_ppm + " ppm, " + m.verdict;
    D.connections.forEach((c, i) => { const o = document.createElement("option"); o.value = i; o.textContent = c; document.getElementById("conn").appendChild(o); });
    document.getElementById("conn").onchange = e => { connFilter = +e.target.value; draw(); };
    D.kinds.forEach((k, i) => { const l = document.createElement("label"); l.className = "k" + i; l.innerHTML = '<input type="checkbox" checked> ' + k + " "; l.firstChild.onchange = e => { shown[i] = e.target.checked; draw(); }; document.getElementById("layers").appendChild(l); });
    let drawnArrows = 0;
    function lanes(w) { return [w * 0.2, w * 0.8]; }
    function y(t, h) { return 30 + (t - t0) / (t1 - t0) * (h - 40); }
    function draw() {
      const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
      canvas.width = w * dpr; canvas.height = h * dpr; ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const [lc, ls] = lanes(w);
      ctx.strokeStyle = "#111"; ctx.lineWidth = 2;
      [lc, ls].forEach(x => { ctx.beginPath(); ctx.moveTo(x, 25); ctx.lineTo(x, h - 5); ctx.stroke(); });
      ctx.fillStyle = "#111"; ctx.font = "bold 13px system-ui"; ctx.textAlign = "center";
      ctx.fillText(D.client + " (client)", lc, 16); ctx.fillText(D.server + " (server)", ls, 16);
      // Visible events: every one is counted into a per-pixel-row density; the first few
      // thousand are kept to draw one by one when that is all there is.
      const rows = new Float64Array(Math.ceil(h));
      const visible = [];
      let count = 0;
      for (let i = 0; i < n; i++) {
        if (!shown[D.kind[i]] || (connFilter >= 0 && D.conn[i] !== connFilter)) continue;
        const a = Math.min(D.send[i], D.recv[i]), b = Math.max(D.send[i], D.recv[i]);
        if (b < t0 || a > t1) continue;
        count++;
        const r = Math.floor(y(D.send[i], h)); if (r >= 0 && r < rows.length) rows[r]++;
        if (visible.length <= 4000) visible.push(i);
      }
      drawnArrows = 0;
      let densityEvents = 0;
      if (count > 4000) {
        let max = 1; rows.forEach(v => { if (v > max) max = v; densityEvents += v; });
        ctx.fillStyle = "#2563eb";
        rows.forEach((v, r) => { if (v) ctx.fillRect(lc + 4, r, (ls - lc - 8) * v / max, 1); });
        document.getElementById("status").textContent = count + " events here: zoom in to see arrows";
      } else {
        ctx.lineWidth = 1;
        for (const i of visible) {
          const fromX = D.dir[i] ? lc : ls, toX = D.dir[i] ? ls : lc;
          const ys = y(D.send[i], h), yr = y(D.recv[i], h);
          ctx.strokeStyle = colors[D.kind[i]]; ctx.fillStyle = colors[D.kind[i]];
          ctx.beginPath(); ctx.moveTo(fromX, ys); ctx.lineTo(toX, yr); ctx.stroke();
          const ang = Math.atan2(yr - ys, toX - fromX);
          ctx.beginPath(); ctx.moveTo(toX, yr); ctx.lineTo(toX - 8 * Math.cos(ang - 0.4), yr - 8 * Math.sin(ang - 0.4)); ctx.lineTo(toX - 8 * Math.cos(ang + 0.4), yr - 8 * Math.sin(ang + 0.4)); ctx.fill();
          drawnArrows++;
        }
        document.getElementById("status").textContent = visible.length + " events in view";
      }
      // Findings: red marks on the lane of the side that shows them.
      ctx.fillStyle = "#dc2626";
      for (const f of D.marks) { if (f[0] < t0 || f[0] > t1) continue; const x = f[1] === "server" ? ls : lc; ctx.beginPath(); ctx.arc(x, y(f[0], h), 4, 0, 7); ctx.fill(); }
      document.body.dataset.lanes = "2"; document.body.dataset.arrows = String(drawnArrows); document.body.dataset.events = String(n); document.body.dataset.densityEvents = String(densityEvents);
    }
    canvas.addEventListener("wheel", e => { e.preventDefault(); const h = canvas.clientHeight; const t = t0 + (e.offsetY - 30) / (h - 40) * (t1 - t0); const f = e.deltaY > 0 ? 1.25 : 0.8; t0 = t - (t - t0) * f; t1 = t + (t1 - t) * f; draw(); }, { passive: false });
    let dragY = null; canvas.addEventListener("mousedown", e => { dragY = e.offsetY; });
    window.addEventListener("mouseup", () => { dragY = null; });
    canvas.addEventListener("mousemove", e => { if (dragY === null) return; const dt = (e.offsetY - dragY) / (canvas.clientHeight - 40) * (t1 - t0); t0 -= dt; t1 -= dt; dragY = e.offsetY; draw(); });
    canvas.addEventListener("click", e => {
      const w = canvas.clientWidth, h = canvas.clientHeight, [lc, ls] = lanes(w); let best = -1, bestD = 6;
      for (let i = 0; i < n; i++) {
        if (!shown[D.kind[i]] || (connFilter >= 0 && D.conn[i] !== connFilter)) continue;
        const x1 = D.dir[i] ? lc : ls, x2 = D.dir[i] ? ls : lc, y1 = y(D.send[i], h), y2 = y(D.recv[i], h);
        const len = Math.hypot(x2 - x1, y2 - y1) || 1, u = Math.max(0, Math.min(1, ((e.offsetX - x1) * (x2 - x1) + (e.offsetY - y1) * (y2 - y1)) / (len * len)));
        const d = Math.hypot(e.offsetX - (x1 + u * (x2 - x1)), e.offsetY - (y1 + u * (y2 - y1)));
        if (d < bestD) { bestD = d; best = i; }
      }
      if (best < 0) return;
      const i = best;
      document.getElementById("details").textContent = [D.kinds[D.kind[i]] + (D.dir[i] ? "  client → server" : "  server → client"), "connection " + D.connections[D.conn[i]], "sent     +" + ((D.send[i]) / 1e6).toFixed(6) + " ms", "received +" + ((D.recv[i]) / 1e6).toFixed(6) + " ms", "one-way delay " + ((D.recv[i] - D.send[i]) / 1000).toFixed(1) + " µs", "client frame " + D.frames[i][0] + ", server frame " + D.frames[i][1]].join("\n");
    });
    window.addEventListener("resize", draw);
    draw();
    </script></body></html>
    """#
}
