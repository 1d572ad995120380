import CaptureFiles
import SMCWire

/// Renders `smcpair decode` events as JSON Lines (schema in docs/formats.md).
public struct DecodeJSONRenderer {
  public let sink: OutputSink
  private var fileField: [UInt8]
  private var interfaceFields: [[UInt8]] = []

  public init(sink: OutputSink, file: String) {
    self.sink = sink
    let scratch = OutputSink(fd: -1)
    scratch.appendJSONString(file)
    fileField = scratch.buffer
    scratch.buffer.removeAll()
  }

  /// Sets the interface names (call once interfaces are known).
  public mutating func setInterfaces(_ names: [String]) {
    let scratch = OutputSink(fd: -1)
    interfaceFields = names.map { name in
      scratch.buffer.removeAll()
      scratch.appendJSONString(name)
      return scratch.buffer
    }
    scratch.buffer.removeAll()
  }

  public func render(_ e: SMCEvent) {
    let s = sink
    s.append("{\"file\":")
    s.buffer.append(contentsOf: fileField)
    s.append(",\"frame\":")
    TextWriter.decimal(UInt64(e.frame), into: &s.buffer)
    s.append(",\"time_ns\":")
    TextWriter.signedDecimal(e.timeNanoseconds, into: &s.buffer)
    s.append(",\"interface\":")
    if e.interface < interfaceFields.count {
      s.buffer.append(contentsOf: interfaceFields[e.interface])
    } else {
      s.append("\"if")
      TextWriter.decimal(UInt64(e.interface), into: &s.buffer)
      s.append("\"")
    }
    s.append(",\"src\":\"")
    e.source.write(into: &s.buffer)
    s.append("\",\"dst\":\"")
    e.destination.write(into: &s.buffer)
    s.append("\",\"kind\":\"")
    switch e.kind {
    case .tcp: s.append("tcp\"")
    case .clc: s.append("clc\"")
    case .cdc: s.append("cdc\"")
    case .data: s.append("data\"")
    case .llc: s.append("llc\"")
    }
    switch e.direction {
    case .inbound: s.append(",\"direction\":\"in\"")
    case .outbound: s.append(",\"direction\":\"out\"")
    case .unknown: break
    }
    switch e.kind {
    case .tcp:
      if let tcp = e.tcp {
        s.append(",\"flags\":\"")
        s.append(tcp.flags.letters)
        s.append("\",\"seq\":")
        TextWriter.decimal(UInt64(tcp.sequence), into: &s.buffer)
        s.append(",\"ack\":")
        TextWriter.decimal(UInt64(tcp.acknowledgment), into: &s.buffer)
        s.append(",\"payload_length\":")
        TextWriter.decimal(UInt64(e.tcpPayloadLength), into: &s.buffer)
        s.append(tcp.smcOption ? ",\"smc_option\":true" : ",\"smc_option\":false")
      }
    case .clc:
      if let m = e.clc { renderCLC(m) }
    case .cdc:
      if let c = e.cdc {
        renderCDC(c)
      } else if let mode = e.mode {
        s.append(mode == .smcR ? ",\"mode\":\"R\"" : ",\"mode\":\"D\"")
      }
    case .data:
      if let mode = e.mode {
        s.append(mode == .smcR ? ",\"mode\":\"R\"" : ",\"mode\":\"D\"")
      } else {
        s.append(",\"mode\":null")
      }
      s.append(",\"length\":")
      if let length = e.dataLength {
        TextWriter.decimal(UInt64(length), into: &s.buffer)
      } else {
        s.append("null")
      }
    case .llc:
      if let l = e.llc {
        s.append(",\"llc_type\":")
        s.appendJSONString(l.name)
        s.append(l.isResponse ? ",\"response\":true" : ",\"response\":false")
      }
    }
    if let note = e.note {
      s.append(",\"note\":")
      s.appendJSONString(note)
    }
    s.append("}\n")
    s.flushIfNeeded()
  }

  private func renderCLC(_ m: CLCMessage) {
    let s = sink
    s.append(",\"clc_type\":\"")
    s.append(m.kind.name)
    s.append("\",\"clc_version\":")
    TextWriter.decimal(UInt64(m.version), into: &s.buffer)
    s.append(",\"clc_path\":\"")
    s.append(m.path.letter)
    s.append("\"")
    if m.kind == .proposal && m.version >= 2 {
      s.append(",\"clc_path_v2\":\"")
      s.append(m.pathV2.letter)
      s.append("\"")
    }
    s.append(",\"eyecatcher\":\"")
    s.append(m.eyecatcherIsSMCD ? "SMCD\"" : "SMCR\"")
    s.append(",\"length\":")
    TextWriter.decimal(UInt64(m.length), into: &s.buffer)
    s.append(m.firstContact ? ",\"first_contact\":true" : ",\"first_contact\":false")
    if let peer = m.peerID {
      s.append(",\"peer_id\":\"")
      TextWriter.hex(peer, minimumDigits: 16, into: &s.buffer)
      s.append("\"")
    }
    if let token = m.alertToken {
      s.append(",\"alert_token\":")
      TextWriter.decimal(UInt64(token), into: &s.buffer)
    }
    if let qp = m.qpNumber {
      s.append(",\"qp_number\":")
      TextWriter.decimal(UInt64(qp), into: &s.buffer)
    }
    if m.rmbeSizeCode != nil, let size = m.bufferSize {
      s.append(",\"rmbe_size\":")
      TextWriter.decimal(UInt64(size), into: &s.buffer)
    }
    if let gid = m.ismGID {
      s.append(",\"ism_gid\":\"")
      TextWriter.hex(gid, minimumDigits: 16, into: &s.buffer)
      s.append("\"")
    }
    if let token = m.dmbToken {
      s.append(",\"dmb_token\":\"")
      TextWriter.hex(token, minimumDigits: 16, into: &s.buffer)
      s.append("\"")
    }
    if m.dmbeSizeCode != nil, let size = m.bufferSize {
      s.append(",\"dmbe_size\":")
      TextWriter.decimal(UInt64(size), into: &s.buffer)
    }
    if let code = m.diagnosis {
      s.append(",\"decline_code\":\"0x")
      TextWriter.hex(UInt64(code), minimumDigits: 8, into: &s.buffer)
      s.append("\",\"decline_reason\":\"")
      s.append(DeclineReason.name(code))
      s.append("\"")
      s.append(m.firstContact ? ",\"out_of_sync\":true" : ",\"out_of_sync\":false")
    }
  }

  private func renderCDC(_ c: CDCMessage) {
    let s = sink
    s.append(c.mode == .smcR ? ",\"mode\":\"R\"" : ",\"mode\":\"D\"")
    if let seq = c.sequenceNumber {
      s.append(",\"seqno\":")
      TextWriter.decimal(UInt64(seq), into: &s.buffer)
    }
    if let token = c.token {
      s.append(",\"token\":")
      TextWriter.decimal(UInt64(token), into: &s.buffer)
    }
    s.append(",\"prod_wrap\":")
    TextWriter.decimal(UInt64(c.producer.wrap), into: &s.buffer)
    s.append(",\"prod_count\":")
    TextWriter.decimal(UInt64(c.producer.count), into: &s.buffer)
    s.append(",\"cons_wrap\":")
    TextWriter.decimal(UInt64(c.consumer.wrap), into: &s.buffer)
    s.append(",\"cons_count\":")
    TextWriter.decimal(UInt64(c.consumer.count), into: &s.buffer)
    s.append(",\"flags\":[")
    var first = true
    for (flag, name) in CDCProducerFlags.namesInOrder where c.producerFlags.contains(flag) {
      if !first { s.append(",") }
      first = false
      s.append("\"")
      s.append(name)
      s.append("\"")
    }
    s.append("],\"conn_state\":[")
    first = true
    for (flag, name) in CDCConnectionState.namesInOrder where c.connectionState.contains(flag) {
      if !first { s.append(",") }
      first = false
      s.append("\"")
      s.append(name)
      s.append("\"")
    }
    s.append("]")
  }
}

/// Renders `smcpair decode` events as a readable table, one line per event.
public struct DecodeTableRenderer {
  public let sink: OutputSink
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
    sink.append(file)
    sink.append("\n")
    sink.append(
      "TIME (UTC)          IFACE          SRC -> DST                                   KIND  DETAILS\n")
  }

  public mutating func render(_ e: SMCEvent) {
    let s = sink
    let time = UTCTime(epochNanoseconds: e.timeNanoseconds)
    if currentDay == nil || currentDay! != (time.year, time.month, time.day) {
      currentDay = (time.year, time.month, time.day)
      s.append("-- ")
      s.append(time.date)
      s.append("\n")
    }
    time.writeTimeOfDay(into: &s.buffer)
    s.append(" ")
    let name = e.interface < interfaceNames.count ? interfaceNames[e.interface] : "if\(e.interface)"
    pad(name, 14)
    var route: [UInt8] = []
    e.source.write(into: &route)
    route.append(contentsOf: " -> ".utf8)
    e.destination.write(into: &route)
    s.buffer.append(contentsOf: route)
    for _ in route.count..<max(route.count, 44) { s.buffer.append(0x20) }
    s.append(" ")
    pad(e.kind.rawValue, 5)
    s.append(" ")
    s.append(details(e))
    s.append("\n")
    s.flushIfNeeded()
  }

  private func pad(_ text: String, _ width: Int) {
    sink.append(text)
    let count = text.utf8.count
    for _ in count..<max(count, width) { sink.buffer.append(0x20) }
    if count >= width { sink.buffer.append(0x20) }
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
    if let note = e.note { parts.append("! \(note)") }
    return parts.joined(separator: "  ")
  }
}

/// The human summary printed after the events of one file.
public enum DecodeSummaryText {
  public static func render(_ summary: DecodeSummary) -> String {
    var lines: [String] = []
    let interfaces = summary.interfaces.enumerated().map { index, interface in
      "\(interface.name ?? "if\(index)") (\(interface.linkType))"
    }
    lines.append(
      "Summary of \(summary.path): \(summary.format), \(summary.packets) packets, interfaces: \(interfaces.joined(separator: ", "))"
    )
    let kinds = ["tcp", "clc", "cdc", "data", "llc"].compactMap { kind in
      summary.events[kind].map { "\(kind) \($0)" }
    }
    lines.append("  events: \(kinds.isEmpty ? "none" : kinds.joined(separator: ", "))")
    let connections = summary.connections
    var counts: [String: Int] = [:]
    for c in connections { counts[c.outcome.label, default: 0] += 1 }
    let order = ["SMC-R", "SMC-D", "fallback", "negotiating", "tcp"]
    let countText = order.compactMap { key in counts[key].map { "\(key) \($0)" } }.joined(separator: ", ")
    lines.append("  connections: \(connections.count)\(connections.isEmpty ? "" : " (\(countText))")")
    for c in connections.prefix(50) {
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
        if !(c.acceptSeen && c.confirmSeen) { text += "  (handshake not in this capture)" }
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
      case .tcp:
        text += "plain TCP"
      }
      lines.append(text)
    }
    if connections.count > 50 { lines.append("    ... \(connections.count - 50) more (use --json for all)") }
    lines.append("  dump records: \(summary.dumpLayout.summary)")
    var other = "  other frames: \(summary.otherFrames) not SMC-related"
    if !summary.unsupportedLinkTypes.isEmpty {
      other +=
        "; undecoded link types: \(summary.unsupportedLinkTypes.sorted().map(String.init).joined(separator: ", "))"
    }
    lines.append(other)
    for (problem, count) in summary.malformedFrames.sorted(by: { $0.key < $1.key }) {
      lines.append("  malformed: \(count) frame\(count == 1 ? "" : "s"): \(problem)")
    }
    if summary.clcProblems > 0 {
      lines.append("  CLC problems: \(summary.clcProblems) (see notes on clc lines)")
    }
    if summary.shortCDCRecords > 0 { lines.append("  short CDC records: \(summary.shortCDCRecords)") }
    if let damage = summary.damage {
      lines.append("  DAMAGED: \(damage.description)")
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
