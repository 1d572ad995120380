import Alignment
import Foundation
import TestSupport
import Testing

@testable import MergePipeline

/// Synthetic paired events for the page: `connections` conversations of `perConnection` events,
/// each starting 5 ms after the previous one, 20 µs apart, emitted connection by connection
/// (not in time order, as a later streaming pass may emit them).
struct SyntheticTimeline {
  var connections: Int
  var perConnection: Int
  let start: Int64 = 1_764_000_000_000_000_000

  func key(_ c: Int) -> String { "10.0.\(c / 250).\(c % 250 + 1):\(40000 + c) <-> 10.1.0.1:7000" }

  func event(_ c: Int, _ k: Int) -> TimelineHTMLEvent {
    let send = start + Int64(c) * 5_000_000 + Int64(k) * 20_000
    // Every 97th event is slow: the density's colour has something to show.
    let delay: Int64 = k % 97 == 0 ? 2_000_000 : 15_000 + Int64(k % 7) * 100
    let kind = PairKind.allCases[k < 3 ? 0 : k < 6 ? 1 : 2 + k % 2]
    let label =
      switch kind {
      case .tcp: ["SYN Seq=0", "SYN, ACK Seq=0 Ack=1", "ACK Seq=1 Ack=1"][k]
      case .clc: ["CLC Proposal v2", "CLC Accept v2 SMC-R", "CLC Confirm v2"][k - 3]
      case .cdc: "CDC #\(k) prod 0:\(k * 1200) cons 0:\(k * 600)"
      case .data: "data 1200 bytes 0:\(k * 1200)"
      }
    return TimelineHTMLEvent(
      sendNanoseconds: send, receiveNanoseconds: send + delay, kind: kind, clientToServer: k % 2 == 0,
      connection: key(c), clientFrame: c * perConnection + k + 1, serverFrame: c * perConnection + k + 3,
      delayNanoseconds: delay, delayUncertaintyNanoseconds: 800, label: label)
  }

  /// Findings at the send of some events, named by flow (`a -> b`), as the findings builder does.
  var findings: [Finding] {
    stride(from: 0, to: connections, by: max(1, connections / 40)).map { c in
      let e = event(c, perConnection / 2)
      return Finding(
        kind: .seqnoGap, side: .side(.server), timeNanoseconds: e.sendNanoseconds,
        connection: "10.1.0.1:7000 -> 10.0.\(c / 250).\(c % 250 + 1):\(40000 + c)",
        message: "CDC seqno jumps on connection \(c)")
    }
  }

  func write(to path: String) throws {
    let writer = try TimelineHTMLWriter(path: path)
    for c in 0..<connections {
      for k in 0..<perConnection { try writer.append(event(c, k)) }
    }
    try writer.finish(
      findings: findings,
      clock: TimelineHTMLClock(
        offsetNanoseconds: 12_345, offsetLowerNanoseconds: 11_500, offsetUpperNanoseconds: 13_100,
        skewPPM: 1.5,
        verdict: "aligned"),
      clientName: "client-host", serverName: "server-host")
  }
}

@Suite struct TimelineHTMLWriting {
  /// Raw DEFLATE unpacked by zlib (through Python): the writer's stream is standard DEFLATE.
  static func inflate(_ data: Data) throws -> Data {
    let result = try Tools.run(
      [
        try Tools.require("python3"), "-c",
        "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), -15))",
      ], stdin: data)
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdoutData
  }

  /// The chunk's columns, read back as docs/formats.md describes them.
  @Test func aChunkHoldsEveryColumnLittleEndianAfterItsBase() throws {
    let timeline = SyntheticTimeline(connections: 2, perConnection: 8)
    let writer = TimelineHTMLWriter()
    var events = [timeline.event(1, 7), timeline.event(0, 0), timeline.event(1, 3)]
    events[2].delayNanoseconds += 5  // a delay that is not receive − send is kept as given
    for event in events { try writer.append(event) }
    try writer.finish(findings: timeline.findings, clock: nil, clientName: "c<1>", serverName: "s")
    let page = writer.finishedPage()
    let n = 3
    let labelBytes = events.map(\.label.utf8.count).reduce(0, +)
    let opening =
      #"<script type="application/x-smcpair-events" data-base="\#(events[0].sendNanoseconds)" data-count="3" data-bytes="\#(45 * n + labelBytes)">"#
    let body = try #require(page.firstRange(of: opening).map { page[$0.upperBound...].prefix { $0 != "<" } })
    let raw = try Self.inflate(try #require(Data(base64Encoded: String(body))))
    try #require(raw.count == 45 * n + labelBytes)
    func f64(_ column: Int, _ i: Int) -> Double {
      Double(
        bitPattern: raw.withUnsafeBytes {
          $0.loadUnaligned(fromByteOffset: column * 8 * n + i * 8, as: UInt64.self)
        })
    }
    func u32(_ offset: Int, _ i: Int) -> UInt32 {
      raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset * n + i * 4, as: UInt32.self) }
    }
    var send = events[0].sendNanoseconds
    var clientFrame: UInt32 = 0
    for (i, event) in events.enumerated() {
      send += Int64(f64(0, i))
      #expect(send == event.sendNanoseconds)
      #expect(send + Int64(f64(1, i)) == event.receiveNanoseconds)
      #expect(Int64(f64(1, i) + f64(2, i)) == event.delayNanoseconds)
      #expect(Float(bitPattern: u32(24, i)) == 800)
      clientFrame &+= u32(32, i)
      #expect(
        clientFrame == UInt32(event.clientFrame) && clientFrame &+ u32(36, i) == UInt32(event.serverFrame))
      #expect(u32(40, i) == UInt32(event.label.utf8.count))
      #expect(raw[44 * n + i] == UInt8(event.kind.index) | (event.clientToServer ? 0x80 : 0))
    }
    // Lanes in order of first appearance.
    #expect([u32(28, 0), u32(28, 1), u32(28, 2)] == [0, 1, 0])
    #expect(String(decoding: raw[(45 * n)...], as: UTF8.self) == events.map(\.label).joined())
    // Metadata: connections, findings matched to lanes by their flow text, names escaped.
    // `<` is escaped in the page's JSON, so no text can close its script.
    let keys = [1, 0].map { "\"" + timeline.key($0).replacingOccurrences(of: "<", with: "\\u003c") + "\"" }
    #expect(page.contains(#""connections":[\#(keys.joined(separator: ","))]"#))
    #expect(page.contains(#""lane":1,"message":"CDC seqno jumps on connection 0""#))
    #expect(page.contains(#""client":"c\u003c1>""#))
    #expect(page.contains(#""model":null"#))
    #expect(!page.contains("http://") && !page.contains("https://"), "self-contained: no network access")
  }

  @Test func deflateRoundTripsThroughZlib() throws {
    var bytes: [UInt8] = Array("CDC #5 prod 0:1200 cons 0:600 ".utf8)
    for i in 0..<70_000 { bytes.append(UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13)) }
    bytes += [UInt8](repeating: 7, count: 1000) + Array("CDC #5 prod 0:1200".utf8)
    for input in [[], [1], [1, 2, 3, 1, 2, 3, 1, 2, 3], bytes] {
      #expect(try Self.inflate(Data(FixedHuffmanDeflate.compress(input))) == Data(input))
    }
  }

  @Test func base64MatchesFoundationForEveryTailLength() {
    for count in 0..<40 {
      let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
      #expect(String(decoding: Base64.encode(bytes), as: UTF8.self) == Data(bytes).base64EncodedString())
    }
  }

  /// Events go to the file chunk by chunk while they come, not at the end.
  @Test func fullChunksAreWrittenBeforeTheEnd() throws {
    let dir = try TemporaryDirectory()
    let timeline = SyntheticTimeline(connections: 1, perConnection: TimelineHTMLWriter.chunkEvents + 10)
    let path = dir.file("timeline.html")
    let writer = try TimelineHTMLWriter(path: path)
    for k in 0..<TimelineHTMLWriter.chunkEvents + 10 { try writer.append(timeline.event(0, k)) }
    let staged = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
    #expect(staged.count == 1 && !FileManager.default.fileExists(atPath: path), "staged until finished")
    let size = try #require(
      try FileManager.default.attributesOfItem(atPath: dir.file(staged[0]))[.size] as? NSNumber
    ).intValue
    #expect(size > TimelineHTMLWriter.chunkEvents * 4, "the first chunk is on disk: \(size) bytes")
    try writer.finish(findings: [], clock: nil, clientName: "c", serverName: "s")
    let page = try String(contentsOfFile: path, encoding: .utf8)
    #expect(page.components(separatedBy: " data-count=").count == 3, "two chunks")
    #expect(page.contains(#""events":\#(TimelineHTMLWriter.chunkEvents + 10)"#))
  }
}

/// A million paired events in headless Chromium: the overview, one connection and one finding,
/// each opened through the page's address (`#connection=`, `#finding=`), checked in the DOM
/// state the page exposes and in a screenshot's pixels. Render times are printed, never asserted.
@Suite(.serialized) struct MillionEventPage {
  static let timeline = SyntheticTimeline(connections: 600, perConnection: 1667)

  func chromium(_ arguments: [String]) throws -> ProcessResult {
    try HeadlessChromium.run(["--window-size=1800,1000"] + arguments)
  }

  /// `data-NAME` values of the page's body in a dumped DOM.
  func dataset(_ dom: String) -> [String: String] {
    guard let bodyTag = dom.firstRange(of: "<body").map({ dom[$0.lowerBound...].prefix { $0 != ">" } }) else {
      return [:]
    }
    var values: [String: String] = [:]
    for match in bodyTag.matches(of: /data-([a-z-]+)="([^"]*)"/) {
      values[String(match.1)] = String(match.2)
    }
    return values
  }

  /// Distinct colours and the share of non-white pixels in the canvas area of a screenshot,
  /// read by a small PNG decoder (zlib plus the five PNG filters) in Python.
  func pixels(_ png: String, dir: TemporaryDirectory) throws -> (colours: Int, inked: Double) {
    let script = dir.file("png.py")
    try #"""
    import struct, sys, zlib
    data = open(sys.argv[1], "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        if kind == b"IDAT": idat += chunk
        pos += 12 + length
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    prev, rows, i = bytearray(stride), [], 0
    for y in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    colours, inked, total = set(), 0, 0
    for y in range(60, h - 20, 2):
        line = rows[y]
        for x in range(100, w - 360, 2):
            px = bytes(line[x * bpp:x * bpp + 3]); colours.add(px); total += 1
            inked += px != b"\xff\xff\xff"
    print(len(colours), inked / total)
    """#.write(toFile: script, atomically: true, encoding: .utf8)
    let result = try Tools.run([try Tools.require("python3"), script, png])
    let parts = result.stdout.split(separator: " ")
    #expect(result.status == 0 && parts.count == 2, "\(result.stderr)")
    return (
      Int(parts.first ?? "") ?? 0,
      Double(parts.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    )
  }

  /// Opens `page` + `fragment`: its DOM state, and a screenshot's pixels.
  func open(_ page: String, _ fragment: String, dir: TemporaryDirectory) throws -> (
    state: [String: String], colours: Int, inked: Double
  ) {
    let dom = try chromium(["--dump-dom", "file://\(page)\(fragment)"])
    #expect(!dom.stderr.contains("Uncaught"), "\(dom.stderr.suffix(2000))")
    let state = dataset(dom.stdout)
    let shot = dir.file("shot\(fragment.filter { $0.isNumber || $0.isLetter }).png")
    let screenshot = try chromium(["--screenshot=\(shot)", "file://\(page)\(fragment)"])
    #expect(!screenshot.stderr.contains("Uncaught"))
    let (colours, inked) = try pixels(shot, dir: dir)
    print(
      "timeline.html, 1M events\(fragment): renderMs \(state["render-ms"] ?? "-"), view \(state["view"] ?? "-"), colours \(colours), inked \(inked)"
    )
    return (state, colours, inked)
  }

  @Test func overviewConnectionAndFindingRenderFromTheAddress() throws {
    let dir = try TemporaryDirectory()
    let page = dir.file("timeline.html")
    try Self.timeline.write(to: page)
    let events = Self.timeline.connections * Self.timeline.perConnection

    let overview = try open(page, "", dir: dir)
    #expect(Int(overview.state["render-ms"] ?? "") != nil, "\(overview.state)")
    #expect(overview.state["view"] == "density")
    #expect(overview.state["events"] == String(events))
    #expect(overview.state["density-events"] == String(events), "zoomed out, every event is counted")
    #expect(Int(overview.state["connection-lanes"] ?? "") == Self.timeline.connections, "\(overview.state)")
    #expect(overview.state["axis"] == "drawn" && overview.state["axis-unit"] == "ms", "\(overview.state)")
    #expect(overview.state["arrows"] == "0")
    #expect(overview.state["verdict"] == "aligned")
    #expect(overview.colours >= 20 && overview.inked > 0.02, "density lanes in several shades and colours")

    let connection = try open(page, "#connection=2", dir: dir)
    #expect(Int(connection.state["render-ms"] ?? "") != nil)
    #expect(connection.state["focus"] == "2")
    #expect(connection.state["view"] == "arrows", "\(connection.state)")
    #expect(connection.state["visible"] == String(Self.timeline.perConnection), "\(connection.state)")
    #expect(Int(connection.state["arrows"] ?? "") == Self.timeline.perConnection)
    #expect((Int(connection.state["labels"] ?? "") ?? 0) > 20, "\(connection.state)")
    #expect(connection.state["axis"] == "drawn" && connection.state["axis-unit"] == "ms")
    #expect(connection.colours >= 10 && connection.inked > 0.02)

    let finding = try open(page, "#finding=3", dir: dir)
    let lane = Self.timeline.connections / 40 * 3
    #expect(finding.state["selected-finding"] == "3")
    #expect(finding.state["focus"] == String(lane), "\(finding.state)")
    #expect(finding.state["view"] == "arrows")
    #expect((Int(finding.state["arrows"] ?? "") ?? 0) >= 16, "the finding's neighbours as arrows")
    #expect((Int(finding.state["labels"] ?? "") ?? 0) >= 8, "\(finding.state)")
    #expect(finding.state["axis"] == "drawn" && finding.state["axis-unit"] == "µs", "\(finding.state)")
    #expect(finding.colours >= 10 && finding.inked > 0.01)
  }

  /// Keys, the findings list and a click on a lane, driven from a page that holds the timeline
  /// in a frame.
  @Test func keysFindingsListAndLaneClicksNavigate() throws {
    let dir = try TemporaryDirectory()
    let page = dir.file("timeline.html")
    try SyntheticTimeline(connections: 20, perConnection: 300).write(to: page)
    let (driven, dom) = try HeadlessChromium.drive(
      page, width: 1400, height: 900, windowSize: "1500,1000",
      script: """
          const w = f.contentWindow, d = w.document, s = () => Object.assign({}, d.body.dataset), key = k => w.dispatchEvent(new w.KeyboardEvent("keydown", {key: k}));
          const r = {start: s()};
          key("n"); key("n"); r.twoNext = s();
          key("p"); r.back = s();
          d.querySelector('#findings li[data-i="7"]').click(); r.listed = s();
          key("0"); r.fit = s();
          const c = d.getElementById("c"), box = c.getBoundingClientRect(), lane = (box.width - 84 - 16) / 20;
          c.dispatchEvent(new w.MouseEvent("click", {clientX: box.left + 84 + 8 + lane * 4.5, clientY: box.top + 300, bubbles: true})); r.lane = s();
          key("+"); r.zoomed = s();
          document.getElementById("r").textContent = JSON.stringify(r);
        """)
    let text = try #require(driven, "\(dom.stderr.suffix(2000))")
    let result = try #require(
      try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: [String: String]], "\(text)")
    #expect(result["start"]?["selectedFinding"] == "-1" && result["start"]?["view"] == "density", "\(result)")
    #expect(result["twoNext"]?["selectedFinding"] == "1" && result["twoNext"]?["focus"] == "1", "\(result)")
    #expect(result["back"]?["selectedFinding"] == "0" && result["back"]?["view"] == "arrows", "\(result)")
    #expect(result["listed"]?["selectedFinding"] == "7" && result["listed"]?["focus"] == "7", "\(result)")
    #expect(result["fit"]?["focus"] == "-1" && result["fit"]?["view"] == "density", "\(result)")
    #expect(
      result["lane"]?["focus"] == "4" && result["lane"]?["visible"] == "300",
      "a lane click fits its connection")
    #expect(
      result["zoomed"]?["focus"] == "4" && (Int(result["zoomed"]?["visible"] ?? "") ?? 0) < 300, "\(result)")
    #expect(!dom.stderr.contains("Uncaught"))
  }

  /// Search by frame number, CDC seqno and label text, through the address.
  @Test func searchFindsFramesSeqnosAndLabels() throws {
    let dir = try TemporaryDirectory()
    let page = dir.file("timeline.html")
    try SyntheticTimeline(connections: 20, perConnection: 300).write(to: page)
    for (query, hits, focus) in [
      ("1803", 2, "6"), ("250", 22, "0"), ("syn, ack", 20, "0"), ("CDC%20%23200", 20, "0"),
    ] {
      let dom = try chromium(["--dump-dom", "file://\(page)#search=\(query)"])
      let state = dataset(dom.stdout)
      #expect(state["search-hits"] == String(hits), "\(query): \(state)")
      #expect(state["focus"] == focus, "\(query): \(state)")
      #expect(state["view"] == "arrows" && state["picked"] != "-1", "\(query): \(state)")
    }
  }
}
