/// What became of a connection's SMC negotiation.
public enum ConnectionOutcome: Sendable, Equatable {
  /// Accept and Confirm seen (or CDC records without a captured handshake).
  case smc(SMCMode)
  /// The connection fell back to TCP; `code` is the CLC decline code when one was seen or
  /// can be inferred, `inferred` says the reason was deduced rather than read.
  case fallback(code: UInt32?, inferred: Bool, detail: String)
  /// SMC was offered and the handshake is still incomplete in the capture.
  case negotiating
  /// Plain TCP: no SMC option, no CLC.
  case tcp

  public var label: String {
    switch self {
    case .smc(let mode): "SMC-\(mode.letter)"
    case .fallback: "fallback"
    case .negotiating: "negotiating"
    case .tcp: "tcp"
    }
  }
}

/// One TCP connection as the capture shows it: NIC handshake joined with dump records by
/// 4-tuple.
public struct ConnectionRecord: Sendable {
  public var key: ConnectionKey
  /// The SYN sender (or Proposal sender when the SYN was not captured).
  public var client: Endpoint?
  public var server: Endpoint?
  public var firstNanoseconds: Int64
  public var lastNanoseconds: Int64
  public var clientOfferedSMC = false
  public var serverOfferedSMC = false
  public var synAckSeen = false
  public var proposalSeen = false
  public var acceptSeen = false
  public var confirmSeen = false
  public var declineSeen = false
  public var declineCode: UInt32?
  public var declinedBy: Endpoint?
  public var clcVersion: UInt8?
  public var mode: SMCMode?
  /// RMBE alert tokens announced by the server (Accept) and the client (Confirm).
  public var serverAlertToken: UInt32?
  public var clientAlertToken: UInt32?
  public var bufferSizeServer: Int?
  public var bufferSizeClient: Int?
  /// TCP payload bytes that were not CLC (data after a fallback).
  public var plainTCPPayloadBytes = 0
  public var clcMessages = 0
  public var cdcRecords = 0
  public var dataRecords = 0
  public var dataBytes = 0
  /// Dump records that look like SMC-R / SMC-D CDC regardless of header calibration.
  var cdcShapeR = 0
  var cdcShapeD = 0

  init(key: ConnectionKey, time: Int64) {
    self.key = key
    firstNanoseconds = time
    lastNanoseconds = time
  }

  /// True when the capture shows anything SMC about this connection.
  public var isSMCRelated: Bool {
    clientOfferedSMC || serverOfferedSMC || clcMessages > 0 || cdcRecords > 0 || dataRecords > 0
      || cdcShapeR > 0 || cdcShapeD > 0
  }

  /// Negotiation outcome, from what was seen.
  public var outcome: ConnectionOutcome {
    if declineSeen {
      let name = declineCode.map(DeclineReason.name) ?? "unknown"
      return .fallback(code: declineCode, inferred: false, detail: "CLC Decline \(name)")
    }
    if acceptSeen && confirmSeen, let mode { return .smc(mode) }
    if clientOfferedSMC && synAckSeen && !serverOfferedSMC {
      return .fallback(
        code: 0x0301_0000, inferred: true, detail: "server's SYN-ACK carried no SMC option (PEERNOSMC)")
    }
    if proposalSeen && !acceptSeen && plainTCPPayloadBytes > 0 {
      return .fallback(
        code: nil, inferred: true,
        detail: "Proposal was not answered by Accept or Decline; data flowed over TCP")
    }
    if let mode = mode ?? (cdcShapeR > 0 ? .smcR : (cdcShapeD > 0 ? .smcD : nil)), !proposalSeen || acceptSeen
    {
      return .smc(mode)
    }
    if clientOfferedSMC || proposalSeen { return .negotiating }
    return .tcp
  }
}

/// Connections keyed by their 4-tuple.
public struct ConnectionTable: Sendable {
  public private(set) var records: [ConnectionKey: ConnectionRecord] = [:]

  public init() {}

  public subscript(key: ConnectionKey) -> ConnectionRecord? { records[key] }

  mutating func update(
    _ a: Endpoint, _ b: Endpoint, time: Int64, _ body: (inout ConnectionRecord) -> Void
  ) {
    let key = ConnectionKey(a, b)
    // One hash lookup: the defaulting subscript's modify accessor.
    modify(&records[key, default: ConnectionRecord(key: key, time: time)])

    func modify(_ record: inout ConnectionRecord) {
      body(&record)
      if time > record.lastNanoseconds { record.lastNanoseconds = time }
    }
  }

  /// Records a TCP segment's handshake facts.
  mutating func noteTCP(_ frame: Frame, time: Int64) {
    guard let tcp = frame.tcp else { return }
    let src = frame.sourceEndpoint
    let dst = frame.destinationEndpoint
    let plain = frame.wirePayloadLength
    // Only track segments of connections that matter or might: SYNs, or known keys.
    if !tcp.flags.contains(.syn) && records.index(forKey: ConnectionKey(src, dst)) == nil { return }
    update(src, dst, time: time) { record in
      if tcp.flags.contains(.syn) && !tcp.flags.contains(.ack) {
        record.client = src
        record.server = dst
        record.clientOfferedSMC = record.clientOfferedSMC || tcp.smcOption
      } else if tcp.flags.contains(.syn) {
        record.synAckSeen = true
        if record.client == nil {
          record.client = dst
          record.server = src
        }
        record.serverOfferedSMC = record.serverOfferedSMC || tcp.smcOption
      }
      if plain > 0 && !CLCMessage.looksLikeCLC(frame.payload) { record.plainTCPPayloadBytes += plain }
    }
  }

  /// Records a CLC message.
  mutating func noteCLC(_ m: CLCMessage, from src: Endpoint, to dst: Endpoint, time: Int64) {
    update(src, dst, time: time) { record in
      record.clcMessages += 1
      record.clcVersion = record.clcVersion.map { max($0, m.version) } ?? m.version
      switch m.kind {
      case .proposal:
        record.proposalSeen = true
        if record.client == nil {
          record.client = src
          record.server = dst
        }
      case .accept:
        record.acceptSeen = true
        record.mode = m.mode
        record.serverAlertToken = m.alertToken
        record.bufferSizeServer = m.bufferSize
        if record.client == nil {
          record.client = dst
          record.server = src
        }
      case .confirm:
        record.confirmSeen = true
        record.mode = record.mode ?? m.mode
        record.clientAlertToken = m.alertToken
        record.bufferSizeClient = m.bufferSize
      case .decline:
        record.declineSeen = true
        record.declineCode = m.diagnosis
        record.declinedBy = src
      }
    }
  }

  /// Records the shape of a dump record (before calibration).
  mutating func noteDumpShape(_ payload: UnsafeRawBufferPointer, src: Endpoint, dst: Endpoint, time: Int64) {
    let n = payload.count
    let r = n >= 48 + 8 && payload.u8(n - 48) == 0xFE && payload.u8(n - 47) == 0x2C
    update(src, dst, time: time) { record in
      if r { record.cdcShapeR += 1 }
    }
  }

  mutating func noteDumpRecord(_ content: DumpRecordContent, src: Endpoint, dst: Endpoint, time: Int64) {
    update(src, dst, time: time) { record in
      switch content {
      case .cdc(let message):
        record.cdcRecords += 1
        if record.mode == nil && !record.acceptSeen { record.mode = message.mode }
      case .data(let length):
        record.dataRecords += 1
        record.dataBytes += length
      case .shortCDC, .unknownHeader:
        record.dataRecords += 1
      }
    }
  }

  /// Connections in order of first appearance.
  public var ordered: [ConnectionRecord] {
    records.values.sorted { ($0.firstNanoseconds, $0.key.lower) < ($1.firstNanoseconds, $1.key.lower) }
  }
}
