import CaptureFiles
import SMCWire

/// Renders `smcpair decode` events as JSON Lines (schema in docs/formats.md).
public struct DecodeJSONRenderer {
  public var sink: OutputSink
  private var fileField: [UInt8]
  private var interfaceFields: [[UInt8]] = []
  /// The conversation so far: relative sequence numbers, retransmissions, data ranges.
  private var describer = EventDescriber()
  /// The kind fields of the current event (kept to reuse its capacity).
  private var memberBytes: [UInt8] = []

  public init(sink: OutputSink, file: String) {
    self.sink = sink
    var scratch = OutputSink(fd: -1)
    scratch.appendJSONString(file)
    fileField = scratch.bytes
  }

  /// Sets the interface names (call once interfaces are known).
  public mutating func setInterfaces(_ names: [String]) {
    interfaceFields = names.map { name in
      var scratch = OutputSink(fd: -1)
      scratch.appendJSONString(name)
      return scratch.bytes
    }
  }

  public mutating func render(_ e: SMCEvent) {
    renderCommonFields(e)
    renderKindFields(describer.describe(e))
    sink.append("}\n")
    sink.flushIfNeeded()
  }

  /// The opening brace and the fields every event has: file, frame, time, interface,
  /// endpoints, kind and (when known) direction.
  private mutating func renderCommonFields(_ e: SMCEvent) {
    sink.append("{\"file\":")
    sink.append(bytes: fileField)
    sink.append(",\"frame\":")
    sink.appendDecimal(UInt64(e.frame))
    sink.append(",\"time_ns\":")
    sink.appendSignedDecimal(e.timeNanoseconds)
    sink.append(",\"interface\":")
    if e.interface < interfaceFields.count {
      sink.append(bytes: interfaceFields[e.interface])
    } else {
      sink.append("\"if")
      sink.appendDecimal(UInt64(e.interface))
      sink.append("\"")
    }
    sink.append(",\"src\":\"")
    sink.appendEndpoint(e.source)
    sink.append("\",\"dst\":\"")
    sink.appendEndpoint(e.destination)
    sink.append("\",\"kind\":\"")
    switch e.kind {
    case .tcp: sink.append("tcp\"")
    case .clc: sink.append("clc\"")
    case .cdc: sink.append("cdc\"")
    case .data: sink.append("data\"")
    case .llc: sink.append("llc\"")
    }
    switch e.direction {
    case .inbound: sink.append(",\"direction\":\"in\"")
    case .outbound: sink.append(",\"direction\":\"out\"")
    case .unknown: break
    }
  }

  /// The fields of the event's kind, from its description (the same members timeline.jsonl
  /// writes). A data record always says its mode and length, `null` when unknown.
  private mutating func renderKindFields(_ description: EventDescription) {
    memberBytes.removeAll(keepingCapacity: true)
    description.appendMembers(into: &memberBytes)
    if description.kind == .data {
      if description.mode == nil { memberBytes += #","mode":null"#.utf8 }
      if description.length == nil { memberBytes += #","length":null"#.utf8 }
    }
    sink.append(bytes: memberBytes)
  }
}

/// Renders `smcpair decode` events as a readable table, one line per event.
public struct DecodeTableRenderer {
  public var sink: OutputSink
  private var interfaceNames: [String] = []
  private var currentDay: (Int, Int, Int)?
  private let color: Bool

  public init(sink: OutputSink, color: Bool = false) {
    self.sink = sink
    self.color = color
  }

  public mutating func setInterfaces(_ names: [String]) { interfaceNames = names }

  public mutating func header(file: String) {
    sink.append("== ")
    sink.append(string: file)
    sink.append("\n")
    sink.append(
      "TIME (UTC)          IFACE          SRC -> DST                                   KIND  DETAILS\n")
  }

  public mutating func render(_ e: SMCEvent) {
    let time = UTCTime(epochNanoseconds: e.timeNanoseconds)
    let day = (time.year, time.month, time.day)
    if currentDay.map({ $0 != day }) ?? true {
      currentDay = day
      sink.append("-- ")
      sink.append(string: time.date)
      sink.append("\n")
    }
    var clock: [UInt8] = []
    time.writeTimeOfDay(into: &clock)
    sink.append(bytes: clock)
    sink.append(" ")
    let name = e.interface < interfaceNames.count ? interfaceNames[e.interface] : "if\(e.interface)"
    pad(name, 14)
    var route: [UInt8] = []
    e.source.write(into: &route)
    route.append(contentsOf: " -> ".utf8)
    e.destination.write(into: &route)
    sink.append(bytes: route)
    for _ in route.count..<max(route.count, 44) { sink.append(byte: 0x20) }
    sink.append(" ")
    pad(e.kind.rawValue, 5)
    sink.append(" ")
    sink.append(string: details(e))
    sink.append("\n")
    sink.flushIfNeeded()
  }

  private mutating func pad(_ text: String, _ width: Int) {
    sink.append(string: text)
    let count = text.utf8.count
    for _ in count..<max(count, width) { sink.append(byte: 0x20) }
    if count >= width { sink.append(byte: 0x20) }
  }

  func details(_ e: SMCEvent) -> String {
    var parts: [String] = []
    switch e.kind {
    case .tcp:
      if let t = e.tcp {
        parts.append(
          "[\(t.flags.letters)] seq=\(t.sequence) ack=\(t.acknowledgment) len=\(e.tcpPayloadLength)")
        if t.smcOption { parts.append("SMC option") }
      }
    case .clc:
      if let m = e.clc {
        var text =
          "\(m.kind.name) v\(m.version) \(m.eyecatcherIsSMCD ? "SMCD" : "SMCR") path=\(m.path.letter)"
        if m.kind == .proposal && m.version >= 2 { text += "/v2:\(m.pathV2.letter)" }
        text += " len=\(m.length)"
        parts.append(text)
        if m.firstContact { parts.append(m.kind == .decline ? "out-of-sync" : "first-contact") }
        if let code = m.diagnosis {
          parts.append(
            "reason=\(DeclineReason.name(code)) (\(DeclineReason.hexCode(code))\(DeclineReason.explanations[code].map { ", " + $0 } ?? ""))"
          )
        }
        if let token = m.alertToken { parts.append("alert_token=\(token)") }
        if let size = m.bufferSize { parts.append("\(m.mode == .smcD ? "dmbe" : "rmbe")=\(size)") }
        if let qp = m.qpNumber { parts.append("qp=\(qp)") }
        if let token = m.dmbToken { parts.append("dmb_token=0x\(String(token, radix: 16))") }
        if e.retransmission { parts.append("retransmission (counted once)") }
      }
    case .cdc:
      if let c = e.cdc {
        var text = "SMC-\(c.mode.letter)"
        if let seq = c.sequenceNumber { text += " seq=\(seq)" }
        if let token = c.token { text += " token=\(token)" }
        text += " prod=\(c.producer.wrap):\(c.producer.count) cons=\(c.consumer.wrap):\(c.consumer.count)"
        parts.append(text)
        let flags =
          CDCProducerFlags.namesInOrder.filter { c.producerFlags.contains($0.0) }.map(\.1)
          + CDCConnectionState.namesInOrder.filter { c.connectionState.contains($0.0) }.map(\.1)
        if !flags.isEmpty { parts.append(flags.joined(separator: ",")) }
      }
    case .data:
      parts.append("SMC-\(e.mode?.letter ?? "?") \(e.dataLength.map { "\($0) bytes" } ?? "length unknown")")
    case .llc:
      if let l = e.llc { parts.append("\(l.name)\(l.isResponse ? " response" : "")") }
    }
    if let roce = e.roce {
      var text =
        "RoCE \(roce.operation) qp=0x\(String(roce.destinationQP, radix: 16)) psn=\(roce.packetSequenceNumber)"
      if let immediate = roce.immediate { text += " imm=0x\(String(immediate, radix: 16))" }
      parts.append(text)
    }
    if let note = e.note { parts.append("! \(note)") }
    return parts.joined(separator: "  ")
  }
}

/// The human summary printed after the events of one file.
public enum DecodeSummaryText {
  public static func render(_ summary: DecodeSummary) -> String {
    let lines = header(summary) + connections(summary.connections) + frames(summary) + problems(summary)
    return lines.joined(separator: "\n") + "\n"
  }

  /// The file, its interfaces and events per kind.
  static func header(_ summary: DecodeSummary) -> [String] {
    let interfaces = summary.interfaces.enumerated().map { index, interface in
      "\(interface.name ?? "if\(index)") (\(interface.linkType))"
    }
    let kinds = ["tcp", "clc", "cdc", "data", "llc"].compactMap { kind in
      summary.events[kind].map { "\(kind) \($0)" }
    }
    return [
      "Summary of \(summary.path): \(summary.format), \(summary.packets) packets, interfaces: \(interfaces.joined(separator: ", "))",
      "  events: \(kinds.isEmpty ? "none" : kinds.joined(separator: ", "))",
    ]
  }

  /// Connections counted by outcome, then the first 50 one per line.
  static func connections(_ connections: [ConnectionRecord]) -> [String] {
    var counts: [String: Int] = [:]
    for c in connections { counts[c.outcome.label, default: 0] += 1 }
    let order = ["SMC-R", "SMC-D", "fallback", "incomplete", "negotiating", "tcp"]
    let countText = order.compactMap { key in counts[key].map { "\(key) \($0)" } }.joined(separator: ", ")
    var lines = ["  connections: \(connections.count)\(connections.isEmpty ? "" : " (\(countText))")"]
    lines += connections.prefix(50).map(connectionLine)
    if connections.count > 50 { lines.append("    ... \(connections.count - 50) more (use --json for all)") }
    return lines
  }

  static func connectionLine(_ c: ConnectionRecord) -> String {
    let route =
      if let client = c.client, let server = c.server { "\(client) -> \(server)" } else {
        c.key.description
      }
    var text = "    \(route)  "
    switch c.outcome {
    case .smc(let mode):
      text += "SMC-\(mode.letter)"
      if let v = c.clcVersion { text += " v\(v)" }
      text += "  CDC \(c.cdcRecords), data \(c.dataRecords) records / \(c.dataBytes) bytes"
      if !c.acceptSeen && !c.confirmSeen {
        text += "  (handshake not in this capture)"
      } else if !(c.acceptSeen && c.confirmSeen) {
        text += "  (CLC \(c.acceptSeen ? "Confirm" : "Accept") not in this capture; CDC records prove SMC)"
      }
    case .fallback(let code, let inferred, let detail):
      text += "fallback to TCP: \(detail)"
      if let code {
        text +=
          " [\(DeclineReason.hexCode(code))\(DeclineReason.explanations[code].map { ": " + $0 } ?? "")]"
      }
      if let by = c.declinedBy { text += ", declined by \(by)" }
      if inferred { text += " (inferred)" }
    case .negotiating:
      text += "SMC offered; handshake incomplete in this capture"
    case .incomplete:
      text += "incomplete: \(c.outcome.missingText ?? "handshake not complete in this capture")"
      if let v = c.clcVersion { text += " (CLC v\(v))" }
    case .tcp:
      text += "plain TCP"
    }
    return text
  }

  /// The dump layout, time order, and the frames that are not SMC's.
  static func frames(_ summary: DecodeSummary) -> [String] {
    var lines = ["  dump records: \(summary.dumpLayout.summary)"]
    lines += roce(summary.roce)
    if summary.packetsOutOfOrder > 0 {
      let window = summary.reorderWindow
      var order =
        "  time order: \(summary.packetsOutOfOrder) packet\(summary.packetsOutOfOrder == 1 ? " was" : "s were") out of time order in the file; events are printed in time order (reorder window \(Double(window.nanoseconds) / 1e9) s, \(window.packets) packets)"
      if summary.packetsBeyondReorderWindow > 0 {
        order +=
          "; \(summary.packetsBeyondReorderWindow) arrived later than the window and are printed where they are in the file"
      }
      lines.append(order)
    }
    var other = "  other frames: \(summary.otherFrames) not SMC-related"
    if !summary.unsupportedLinkTypes.isEmpty {
      other +=
        "; undecoded link types: \(summary.unsupportedLinkTypes.sorted().map(String.init).joined(separator: ", "))"
    }
    lines.append(other)
    return lines
  }

  /// RoCEv2 packets: what they carried, and what ties their CDCs to TCP connections.
  static func roce(_ roce: RoCESummary) -> [String] {
    guard roce.packets > 0 else { return [] }
    let links = roce.links.count
    var text =
      "  RoCEv2: \(roce.packets) packets, \(links) queue pair\(links == 1 ? "" : "s") with SMC-R traffic: CDC \(roce.cdcMessages), LLC \(roce.llcMessages), RDMA writes \(roce.rdmaWrites)"
    if roce.rdmaWritesWithImmediate > 0 {
      text +=
        " (\(roce.rdmaWritesWithImmediate) with immediate data, not decoded: RWWI mode's layout is not established)"
    }
    return [
      text,
      "    their addresses are the RDMA NICs' GIDs and their ports RoCE's: a CDC names its TCP connection (tcp_connection) only when this capture holds the receiver's CLC Accept or Confirm with the same GID, QP and alert token",
    ]
  }

  /// Malformed frames, CLC and CDC problems, damage.
  static func problems(_ summary: DecodeSummary) -> [String] {
    var lines: [String] = []
    for (problem, count) in summary.malformedFrames.sorted(by: { $0.key < $1.key }) {
      lines.append("  malformed: \(count) frame\(count == 1 ? "" : "s"): \(problem)")
    }
    if summary.clcProblems > 0 {
      lines.append("  CLC problems: \(summary.clcProblems) (see notes on clc lines)")
    }
    if summary.clcRetransmissions > 0 {
      lines.append(
        "  CLC retransmissions: \(summary.clcRetransmissions) (each reported once more, marked, not counted again)"
      )
    }
    if summary.clcStreamsOverflowed > 0 {
      lines.append(
        "  CLC reassembly: \(summary.clcStreamsOverflowed) TCP direction\(summary.clcStreamsOverflowed == 1 ? "" : "s") needed more than \(summary.clcBufferLimit) bytes; the rest of their CLC bytes is not decoded"
      )
    }
    if summary.shortCDCRecords > 0 { lines.append("  short CDC records: \(summary.shortCDCRecords)") }
    if let damage = summary.damage {
      lines.append("  DAMAGED: \(damage.description)")
    }
    return lines
  }
}
