import SMCWire

/// One JSON value of an event's description: what `decode --json` and `timeline.jsonl` write.
public enum EventFieldValue: Sendable, Equatable {
  case int(Int64)
  case string(String)
  case bool(Bool)
  case strings([String])

  /// Appends the value as JSON, the bytes `JSONEncoder` writes for it (no slash escaping).
  public func write(into bytes: inout [UInt8]) {
    switch self {
    case .int(let value): TextWriter.signedDecimal(value, into: &bytes)
    case .string(let text): EventFieldValue.quote(text, into: &bytes)
    case .bool(let value): bytes += value ? "true".utf8 : "false".utf8
    case .strings(let texts):
      bytes.append(UInt8(ascii: "["))
      for (index, text) in texts.enumerated() {
        if index > 0 { bytes.append(UInt8(ascii: ",")) }
        EventFieldValue.quote(text, into: &bytes)
      }
      bytes.append(UInt8(ascii: "]"))
    }
  }

  /// A JSON string literal as `JSONEncoder` writes it: quote, backslash and control characters escaped.
  static func quote(_ text: String, into bytes: inout [UInt8]) {
    bytes.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): bytes += #"\""#.utf8
      case UInt8(ascii: "\\"): bytes += #"\\"#.utf8
      case 0x0A: bytes += #"\n"#.utf8
      case 0x0D: bytes += #"\r"#.utf8
      case 0x09: bytes += #"\t"#.utf8
      case 0x08: bytes += #"\b"#.utf8
      case 0x0C: bytes += #"\f"#.utf8
      case 0..<0x20:
        bytes += #"\u00"#.utf8
        TextWriter.hex(UInt64(byte), minimumDigits: 2, into: &bytes)
      default: bytes.append(byte)
      }
    }
    bytes.append(UInt8(ascii: "\""))
  }
}

/// What one event is, as the fields `decode --json` writes for its kind (the names are a
/// contract: docs/formats.md) plus what only the conversation tells (relative TCP sequence
/// numbers, retransmissions, the cursor range a data record fills). `timeline.jsonl` pair lines
/// carry the same fields; `label` is the one-line text of the ladder and the HTML.
public struct EventDescription: Sendable, Equatable {
  /// Which kind of event it describes (not a member: decode and the timeline write their own `kind`).
  public var kind: SMCEvent.Kind
  // tcp
  public var tcpFlags: TCPFlags?
  public var seq: UInt32?
  public var ack: UInt32?
  /// Relative to the first sequence number seen in this direction of the connection (Wireshark's).
  public var seqRelative: UInt32?
  public var ackRelative: UInt32?
  public var payloadLength: Int?
  public var smcOption: Bool?
  /// The segment's bytes (or SYN/FIN) were sent before in this direction.
  public var tcpRetransmission = false
  // clc
  public var clcType: String?
  public var clcVersion: Int?
  public var clcPath: String?
  public var clcPathV2: String?
  public var eyecatcher: String?
  /// CLC message length, or a data record's payload length.
  public var length: Int?
  public var firstContact: Bool?
  public var peerID: String?
  public var alertToken: UInt32?
  public var qpNumber: UInt32?
  public var rmbeSize: Int?
  public var ismGID: String?
  public var dmbToken: String?
  public var dmbeSize: Int?
  public var declineCode: UInt32?
  public var outOfSync: Bool?
  /// A CLC message seen again in a TCP retransmission.
  public var retransmission = false
  // cdc and data
  /// `R` or `D`.
  public var mode: String?
  public var seqno: Int?
  public var token: UInt32?
  public var producer: CDCCursor?
  public var consumer: CDCCursor?
  public var cdcFlags: CDCProducerFlags?
  public var connectionState: CDCConnectionState?
  /// The producer cursor before and after a data record, in its direction of the connection.
  public var rangeStart: CDCCursor?
  public var rangeEnd: CDCCursor?
  // llc
  public var llcType: String?
  public var llcResponse: Bool?
  // RoCEv2 (events read from an RDMA NIC's capture)
  /// The InfiniBand operation, e.g. "Send Only".
  public var roceOperation: String?
  /// The BTH destination queue pair: the SMC-R link the message travels on.
  public var roceQP: UInt32?
  public var rocePSN: UInt32?
  /// The immediate data of a WITH IMMEDIATE operation (layout not established for SMC-R).
  public var immediate: UInt32?
  /// A RoCE CDC's TCP connection (`client -> server`), when a CLC Accept or Confirm earlier
  /// in the capture announced the CDC's receiver GID, queue pair and alert token.
  public var tcpConnection: String?
  public var note: String?

  public init(kind: SMCEvent.Kind) { self.kind = kind }

  /// The decode fields of `event` alone (nothing that needs the rest of the conversation).
  public init(_ event: SMCEvent) {
    kind = event.kind
    note = event.note
    if let roce = event.roce {
      roceOperation = roce.operation
      roceQP = roce.destinationQP
      rocePSN = roce.packetSequenceNumber
      immediate = roce.immediate
    }
    switch event.kind {
    case .tcp:
      if let tcp = event.tcp {
        tcpFlags = TCPFlags(rawValue: tcp.flags.rawValue & 0xFF)
        seq = tcp.sequence
        ack = tcp.acknowledgment
        payloadLength = event.tcpPayloadLength
        smcOption = tcp.smcOption
      }
    case .clc:
      if let message = event.clc { setCLC(message) }
      retransmission = event.retransmission
    case .cdc:
      if let cdc = event.cdc {
        mode = cdc.mode.letter
        seqno = cdc.sequenceNumber.map(Int.init)
        token = cdc.token
        producer = cdc.producer
        consumer = cdc.consumer
        cdcFlags = cdc.producerFlags
        connectionState = cdc.connectionState
      } else {
        mode = event.mode?.letter
      }
    case .data:
      mode = event.mode?.letter
      length = event.dataLength
    case .llc:
      if let llc = event.llc {
        llcType = llc.name
        llcResponse = llc.isResponse
      }
    }
  }

  private mutating func setCLC(_ m: CLCMessage) {
    clcType = m.kind.name
    clcVersion = Int(m.version)
    clcPath = m.path.letter
    if m.kind == .proposal && m.version >= 2 { clcPathV2 = m.pathV2.letter }
    eyecatcher = m.eyecatcherIsSMCD ? "SMCD" : "SMCR"
    length = Int(m.length)
    firstContact = m.firstContact
    peerID = m.peerID.map { Self.hex($0, digits: 16) }
    alertToken = m.alertToken
    qpNumber = m.qpNumber
    if m.rmbeSizeCode != nil { rmbeSize = m.bufferSize }
    ismGID = m.ismGID.map { Self.hex($0, digits: 16) }
    dmbToken = m.dmbToken.map { Self.hex($0, digits: 16) }
    if m.dmbeSizeCode != nil { dmbeSize = m.bufferSize }
    if let code = m.diagnosis {
      declineCode = code
      outOfSync = m.firstContact
    }
  }

  static func hex(_ value: some FixedWidthInteger, digits: Int) -> String {
    var bytes: [UInt8] = []
    TextWriter.hex(UInt64(value), minimumDigits: digits, into: &bytes)
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Calls `body` with every field that is set, in the order of their names (the order a
  /// sorted-keys encoder writes them): the one list behind decode --json, timeline.jsonl
  /// and the records' Codable form.
  public func forEachMember(_ body: (String, EventFieldValue) -> Void) {
    func int(_ key: String, _ value: (some BinaryInteger)?) { if let value { body(key, .int(Int64(value))) } }
    func string(_ key: String, _ value: String?) { if let value { body(key, .string(value)) } }
    func bool(_ key: String, _ value: Bool?) { if let value { body(key, .bool(value)) } }
    int("ack", ack)
    int("ack_rel", ackRelative)
    int("alert_token", alertToken)
    string("clc_path", clcPath)
    string("clc_path_v2", clcPathV2)
    string("clc_type", clcType)
    int("clc_version", clcVersion)
    if let connectionState { body("conn_state", .strings(Self.names(connectionState))) }
    int("cons_count", consumer?.count)
    int("cons_wrap", consumer?.wrap)
    if let declineCode {
      body("decline_code", .string("0x" + Self.hex(declineCode, digits: 8)))
      body("decline_reason", .string(DeclineReason.name(declineCode)))
      string("decline_text", DeclineReason.explanations[declineCode])
    }
    string("dmb_token", dmbToken)
    int("dmbe_size", dmbeSize)
    string("eyecatcher", eyecatcher)
    bool("first_contact", firstContact)
    if let tcpFlags {
      body("flags", .string(tcpFlags.letters))
    } else if let cdcFlags {
      body("flags", .strings(Self.names(cdcFlags)))
    }
    int("immediate", immediate)
    string("ism_gid", ismGID)
    int("length", length)
    string("llc_type", llcType)
    string("mode", mode)
    string("note", note)
    bool("out_of_sync", outOfSync)
    int("payload_length", payloadLength)
    string("peer_id", peerID)
    int("prod_count", producer?.count)
    int("prod_wrap", producer?.wrap)
    int("qp_number", qpNumber)
    int("range_end_count", rangeEnd?.count)
    int("range_end_wrap", rangeEnd?.wrap)
    int("range_start_count", rangeStart?.count)
    int("range_start_wrap", rangeStart?.wrap)
    bool("response", llcResponse)
    if retransmission { body("retransmission", .bool(true)) }
    int("rmbe_size", rmbeSize)
    string("roce_op", roceOperation)
    int("roce_psn", rocePSN)
    int("roce_qp", roceQP)
    int("seq", seq)
    int("seq_rel", seqRelative)
    int("seqno", seqno)
    bool("smc_option", smcOption)
    string("tcp_connection", tcpConnection)
    if tcpRetransmission { body("tcp_retransmission", .bool(true)) }
    int("token", token)
  }

  /// The names of the set flags, in the documented order (most CDC messages have none: no list is built).
  static func names(_ flags: CDCProducerFlags) -> [String] {
    flags.isEmpty ? [] : CDCProducerFlags.namesInOrder.filter { flags.contains($0.0) }.map(\.1)
  }

  static func names(_ state: CDCConnectionState) -> [String] {
    state.isEmpty ? [] : CDCConnectionState.namesInOrder.filter { state.contains($0.0) }.map(\.1)
  }

  /// Appends `,"name":value` for every member, in `forEachMember` order.
  public func appendMembers(into bytes: inout [UInt8]) {
    forEachMember { key, value in
      bytes += #",""#.utf8
      Self.appendName(key, into: &bytes)
      bytes += #"":"#.utf8
      value.write(into: &bytes)
    }
  }

  /// Appends a member's name: the names are literals, whose bytes are copied whole (appending a
  /// string's UTF-8 view goes byte by byte).
  public static func appendName(_ name: String, into bytes: inout [UInt8]) {
    let copied: Void? = name.utf8.withContiguousStorageIfAvailable { bytes.append(contentsOf: $0) }
    if copied == nil { bytes += name.utf8 }
  }
}

extension EventDescription {
  /// One line saying what the event is, in the manner of Wireshark's Info column:
  /// `SYN, ACK Seq=0 Ack=1 Len=0`, `CLC Proposal v2 R`, `CDC #5 prod 0:1200 cons 0:0 [write-blocked]`,
  /// `data 1200 B 0:0..0:1200`.
  public var label: String {
    if clcType != nil { return clcLabel }
    if let tcpFlags { return tcpLabel(tcpFlags) }
    if let llcType { return "LLC \(llcType)\(llcResponse == true ? " response" : "")" }
    var text: String
    switch kind {
    case .cdc:
      text = "CDC"
      if let seqno { text += " #\(seqno)" }
      if let producer, let consumer {
        text += " prod \(Self.cursor(producer)) cons \(Self.cursor(consumer))"
      } else {
        text += " (short record)"
      }
      let names =
        CDCProducerFlags.namesInOrder.filter { cdcFlags?.contains($0.0) ?? false }.map(\.1)
        + CDCConnectionState.namesInOrder.filter { connectionState?.contains($0.0) ?? false }.map(\.1)
      if !names.isEmpty {
        text += " [" + names.map { $0.replacingUnderscores() }.joined(separator: ", ") + "]"
      }
    case .data:
      text = "data " + (length.map { "\($0) B" } ?? "(length unknown)")
      if let rangeStart, let rangeEnd { text += " \(Self.cursor(rangeStart))..\(Self.cursor(rangeEnd))" }
    default:
      text = kind.rawValue
    }
    return text
  }

  private var clcLabel: String {
    var text = "CLC " + (clcType.map { $0.prefix(1).uppercased() + $0.dropFirst() } ?? "")
    if let clcVersion { text += " v\(clcVersion)" }
    if let path = clcPathV2 ?? clcPath {
      if clcType != "decline" { text += " \(path)" }
    }
    if let declineCode {
      text += " 0x\(Self.hex(declineCode, digits: 8)) (\(DeclineReason.name(declineCode))"
      if let explanation = DeclineReason.explanations[declineCode] { text += ": \(explanation)" }
      text += ")"
    }
    if retransmission { text += " [retransmission]" }
    return text
  }

  private func tcpLabel(_ flags: TCPFlags) -> String {
    let names: [(TCPFlags, String)] = [
      (.fin, "FIN"), (.syn, "SYN"), (.rst, "RST"), (.psh, "PSH"), (.ack, "ACK"), (.urg, "URG"),
      (.ece, "ECE"), (.cwr, "CWR"),
    ]
    let set = names.filter { flags.contains($0.0) }.map(\.1)
    var text = set.isEmpty ? "<none>" : set.joined(separator: ", ")
    if let seq = seqRelative ?? seq { text += " Seq=\(seq)" }
    if flags.contains(.ack), let ack = ackRelative ?? ack { text += " Ack=\(ack)" }
    text += " Len=\(payloadLength ?? 0)"
    if tcpRetransmission { text += " [TCP Retransmission]" }
    return text
  }

  static func cursor(_ c: CDCCursor) -> String { "\(c.wrap):\(c.count)" }
}

extension String {
  fileprivate func replacingUnderscores() -> String {
    String(map { $0 == "_" ? "-" : $0 })
  }
}

/// Describes a capture's events one at a time, in time order, with what the conversation so far
/// tells: TCP sequence numbers relative to each direction's first, TCP retransmissions, and the
/// producer-cursor range each data record fills. State is per connection direction (memory grows
/// with connections, not packets), so a streaming pass can feed it each event once.
public struct EventDescriber {
  /// One direction of a connection.
  struct Direction: Hashable {
    var source: Endpoint
    var destination: Endpoint
  }

  struct TCPState {
    /// First sequence number of this direction (the SYN's when seen).
    var base: UInt32
    /// One past the highest sequence number sent so far (SYN and FIN count one).
    var next: UInt32
  }

  private var tcp: [Direction: TCPState] = [:]
  /// Producer cursor of each direction: the last CDC's, moved on by the data records after it.
  private var producer: [Direction: CDCCursor] = [:]
  /// RMBE/DMBE size each endpoint announced in its CLC Accept or Confirm: the ring its peer writes.
  private var bufferSize: [Endpoint: Int] = [:]
  /// The TCP connection (`client -> server`) each SMC-R receiver announced in its Accept or
  /// Confirm: what ties a RoCE CDC, addressed by GID, QP and token, to its connection.
  private var roceReceivers: [RoCEReceiver: String] = [:]

  public init() {}

  /// The description of `event`, the next one of its capture in time order.
  public mutating func describe(_ event: SMCEvent) -> EventDescription {
    var description = EventDescription(event)
    let direction = Direction(source: event.source, destination: event.destination)
    switch event.kind {
    case .tcp:
      if let header = event.tcp {
        describeTCP(header, payload: event.tcpPayloadLength, direction, &description)
      }
    case .clc:
      if let message = event.clc, message.kind == .accept || message.kind == .confirm,
        let size = message.bufferSize
      {
        bufferSize[event.source] = size
      }
      if let message = event.clc, let receiver = RoCEReceiver(announcedBy: message) {
        // The Accept goes server -> client, the Confirm client -> server.
        let (client, server) =
          message.kind == .accept ? (event.destination, event.source) : (event.source, event.destination)
        roceReceivers[receiver] = "\(client) -> \(server)"
      }
    case .cdc:
      // A RoCE link (its addresses and ports) carries many connections' CDCs: no cursor per
      // direction is kept for it.
      if let cdc = event.cdc, event.roce == nil { producer[direction] = cdc.producer }
      if let roce = event.roce, let token = event.cdc?.token, !roceReceivers.isEmpty {
        let receiver = RoCEReceiver(
          address: event.destination.address, queuePair: roce.destinationQP, token: token)
        description.tcpConnection = roceReceivers[receiver]
      }
    case .data:
      if let length = event.dataLength, event.roce == nil, let start = producer[direction] {
        let end = advance(start, by: length, ring: bufferSize[event.destination])
        description.rangeStart = start
        description.rangeEnd = end
        producer[direction] = end
      }
    case .llc:
      break
    }
    return description
  }

  private mutating func describeTCP(
    _ header: TCPHeader, payload: Int, _ direction: Direction, _ description: inout EventDescription
  ) {
    let flags = header.flags
    let span =
      UInt32(truncatingIfNeeded: payload) &+ (flags.contains(.syn) ? 1 : 0) &+ (flags.contains(.fin) ? 1 : 0)
    let end = header.sequence &+ span
    let reverse = Direction(source: direction.destination, destination: direction.source)
    if flags.contains(.syn) && !flags.contains(.ack) {
      // A new connection: both rings start at cursor 0.
      producer[direction] = CDCCursor(wrap: 0, count: 0)
      producer[reverse] = CDCCursor(wrap: 0, count: 0)
    }
    if flags.contains(.syn) || tcp[direction] == nil {
      // A SYN starts the direction again (a new connection on the same ports).
      if flags.contains(.syn), let old = tcp[direction], old.base == header.sequence {
        description.tcpRetransmission = true
      }
      tcp[direction] = TCPState(base: header.sequence, next: end)
    } else if var state = tcp[direction] {
      if span > 0 && Int32(bitPattern: end &- state.next) <= 0 {
        description.tcpRetransmission = true
      }
      if Int32(bitPattern: end &- state.next) > 0 { state.next = end }
      tcp[direction] = state
    }
    if let state = tcp[direction] { description.seqRelative = header.sequence &- state.base }
    if flags.contains(.ack), let peer = tcp[reverse] {
      description.ackRelative = header.acknowledgment &- peer.base
    }
  }

  /// `cursor` moved on by `length` bytes in a ring of `ring` bytes (no wrap when its size is unknown).
  private func advance(_ cursor: CDCCursor, by length: Int, ring: Int?) -> CDCCursor {
    let count = Int(cursor.count) + length
    guard let ring, ring > 0, count >= ring else {
      return CDCCursor(wrap: cursor.wrap, count: UInt32(truncatingIfNeeded: count))
    }
    return CDCCursor(
      wrap: cursor.wrap &+ UInt16(truncatingIfNeeded: count / ring),
      count: UInt32(truncatingIfNeeded: count % ring))
  }
}

/// Where a description's members are read back from (a record's decoder): each returns nil
/// for a member that is absent.
public protocol EventMemberSource {
  func int(_ key: String) throws -> Int64?
  func string(_ key: String) throws -> String?
  func bool(_ key: String) throws -> Bool?
  /// `flags`: a TCP segment's letters (a string) or a CDC message's names (a list).
  func lettersOrNames(_ key: String) throws -> (letters: String?, names: [String]?)
  func strings(_ key: String) throws -> [String]?
}

extension EventDescription {
  /// The description whose members `source` holds (what `forEachMember` wrote); `kind` is the
  /// record's own. Nil when no member is there (a line written before descriptions existed).
  public init?(kind: SMCEvent.Kind, reading source: some EventMemberSource) throws {
    self.init(kind: kind)
    var any = false
    func int<T: FixedWidthInteger>(_ key: String, _ type: T.Type = T.self) throws -> T? {
      guard let value = try source.int(key) else { return nil }
      any = true
      return T(truncatingIfNeeded: value)
    }
    func string(_ key: String) throws -> String? {
      guard let value = try source.string(key) else { return nil }
      any = true
      return value
    }
    func bool(_ key: String) throws -> Bool? {
      guard let value = try source.bool(key) else { return nil }
      any = true
      return value
    }
    func cursor(_ wrap: String, _ count: String) throws -> CDCCursor? {
      guard let w: UInt16 = try int(wrap), let c: UInt32 = try int(count) else { return nil }
      return CDCCursor(wrap: w, count: c)
    }
    ack = try int("ack")
    ackRelative = try int("ack_rel")
    alertToken = try int("alert_token")
    clcPath = try string("clc_path")
    clcPathV2 = try string("clc_path_v2")
    clcType = try string("clc_type")
    clcVersion = try int("clc_version")
    if let names = try source.strings("conn_state") {
      any = true
      connectionState = CDCConnectionState(
        CDCConnectionState.namesInOrder.filter { names.contains($0.1) }.map(\.0))
    }
    consumer = try cursor("cons_wrap", "cons_count")
    if let code = try string("decline_code") {
      declineCode = UInt32(code.hasPrefix("0x") ? String(code.dropFirst(2)) : code, radix: 16)
    }
    dmbToken = try string("dmb_token")
    dmbeSize = try int("dmbe_size")
    eyecatcher = try string("eyecatcher")
    firstContact = try bool("first_contact")
    let flags = try source.lettersOrNames("flags")
    if let letters = flags.letters {
      any = true
      tcpFlags = Self.tcpFlags(letters)
    } else if let names = flags.names {
      any = true
      cdcFlags = CDCProducerFlags(CDCProducerFlags.namesInOrder.filter { names.contains($0.1) }.map(\.0))
    }
    immediate = try int("immediate")
    ismGID = try string("ism_gid")
    length = try int("length")
    llcType = try string("llc_type")
    mode = try string("mode")
    note = try string("note")
    outOfSync = try bool("out_of_sync")
    payloadLength = try int("payload_length")
    peerID = try string("peer_id")
    producer = try cursor("prod_wrap", "prod_count")
    qpNumber = try int("qp_number")
    rangeEnd = try cursor("range_end_wrap", "range_end_count")
    rangeStart = try cursor("range_start_wrap", "range_start_count")
    llcResponse = try bool("response")
    retransmission = try bool("retransmission") ?? false
    rmbeSize = try int("rmbe_size")
    roceOperation = try string("roce_op")
    rocePSN = try int("roce_psn")
    roceQP = try int("roce_qp")
    seq = try int("seq")
    seqRelative = try int("seq_rel")
    seqno = try int("seqno")
    smcOption = try bool("smc_option")
    tcpConnection = try string("tcp_connection")
    tcpRetransmission = try bool("tcp_retransmission") ?? false
    token = try int("token")
    guard any else { return nil }
    // A segment that began a CLC message (a pair of kind clc) is described as the TCP segment it is.
    if clcType == nil && tcpFlags != nil { self.kind = .tcp }
  }

  /// The flags of tcpdump-style `letters` (`S.`, `FP.`, `none`).
  static func tcpFlags(_ letters: String) -> TCPFlags {
    let byLetter: [Character: TCPFlags] = [
      "F": .fin, "S": .syn, "R": .rst, "P": .psh, "U": .urg, "E": .ece, "W": .cwr, ".": .ack,
    ]
    return TCPFlags(letters.compactMap { byLetter[$0] })
  }
}
