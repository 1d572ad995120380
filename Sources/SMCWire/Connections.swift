/// What became of a connection's SMC negotiation.
public enum ConnectionOutcome: Sendable, Equatable {
  /// Accept and Confirm seen, or CDC records of the connection (which prove SMC even when
  /// the handshake, or part of it, is not in the capture).
  case smc(SMCMode)
  /// The connection fell back to TCP; `code` is the CLC decline code when one was seen or
  /// can be inferred, `inferred` says the reason was deduced rather than read.
  case fallback(code: UInt32?, inferred: Bool, detail: String)
  /// SMC was offered (SMC option, Proposal) and no Accept, Confirm or Decline is in the
  /// capture.
  case negotiating
  /// Part of the handshake past the Proposal is in the capture (an Accept or a Confirm) but
  /// not both, and no CDC record proves the connection: `missing` names the CLC messages
  /// that are not in the capture (Proposal, Accept, Confirm, in handshake order).
  case incomplete(missing: [CLCMessage.Kind])
  /// Plain TCP: no SMC option, no CLC.
  case tcp

  public var label: String {
    switch self {
    case .smc(let mode): "SMC-\(mode.letter)"
    case .fallback: "fallback"
    case .negotiating: "negotiating"
    case .incomplete: "incomplete"
    case .tcp: "tcp"
    }
  }

  /// For `incomplete`: what is missing, e.g. "CLC Confirm not in this capture".
  public var missingText: String? {
    guard case .incomplete(let missing) = self, !missing.isEmpty else { return nil }
    let names = missing.map { "CLC " + $0.name.prefix(1).uppercased() + $0.name.dropFirst() }
    let list =
      names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
    return "\(list) not in this capture"
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
  /// TCP retransmissions of CLC messages already counted (not counted again).
  public var clcRetransmissions = 0
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

  /// Takes `client` and `server` as the roles unless a message already settled them (a SYN
  /// names the client for certain; later messages only fill in what is missing).
  mutating func assumeRoles(client: Endpoint, server: Endpoint) {
    guard self.client == nil else { return }
    self.client = client
    self.server = server
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
    // CDC records exist only on an established SMC connection: they prove it whatever part
    // of the handshake the capture holds.
    let cdcProof = cdcRecords > 0 || cdcShapeR > 0 || cdcShapeD > 0
    if cdcProof, let mode = mode ?? (cdcShapeR > 0 ? .smcR : (cdcShapeD > 0 ? .smcD : nil)) {
      return .smc(mode)
    }
    if acceptSeen || confirmSeen {
      var missing: [CLCMessage.Kind] = []
      if !proposalSeen { missing.append(.proposal) }
      if !acceptSeen { missing.append(.accept) }
      if !confirmSeen { missing.append(.confirm) }
      return .incomplete(missing: missing)
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

  /// Records a TCP segment's handshake facts; `plainBytes` is the part of its payload that
  /// is not CLC (as the CLC stream reassembly found).
  mutating func noteTCP(_ frame: Frame, time: Int64, plainBytes: Int) {
    guard let tcp = frame.tcp else { return }
    let src = frame.sourceEndpoint
    let dst = frame.destinationEndpoint
    // Only track segments of connections that matter or might: SYNs, or known keys.
    if !tcp.flags.contains(.syn) && records.index(forKey: ConnectionKey(src, dst)) == nil { return }
    update(src, dst, time: time) { record in
      if tcp.flags.contains(.syn) && !tcp.flags.contains(.ack) {
        record.client = src
        record.server = dst
        record.clientOfferedSMC = record.clientOfferedSMC || tcp.smcOption
      } else if tcp.flags.contains(.syn) {
        record.synAckSeen = true
        record.assumeRoles(client: dst, server: src)
        record.serverOfferedSMC = record.serverOfferedSMC || tcp.smcOption
      }
      record.plainTCPPayloadBytes += plainBytes
    }
  }

  /// Records a CLC message; a retransmission is counted as such, not as another message.
  mutating func noteCLC(
    _ m: CLCMessage, from src: Endpoint, to dst: Endpoint, time: Int64, retransmission: Bool = false
  ) {
    update(src, dst, time: time) { record in
      if retransmission {
        record.clcRetransmissions += 1
        return
      }
      record.clcMessages += 1
      record.clcVersion = record.clcVersion.map { max($0, m.version) } ?? m.version
      switch m.kind {
      case .proposal:
        record.proposalSeen = true
        record.assumeRoles(client: src, server: dst)
      case .accept:
        record.acceptSeen = true
        record.mode = m.mode
        record.serverAlertToken = m.alertToken
        record.bufferSizeServer = m.bufferSize
        record.assumeRoles(client: dst, server: src)
      case .confirm:
        record.confirmSeen = true
        record.mode = record.mode ?? m.mode
        record.clientAlertToken = m.alertToken
        record.bufferSizeClient = m.bufferSize
        record.assumeRoles(client: src, server: dst)
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
