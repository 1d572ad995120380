import CaptureFiles
import SMCWire

/// How a synthetic SMC connection negotiates.
public enum Scenario: Sendable, Equatable {
  /// Proposal, Accept, Confirm, then SMC-R CDC and data records.
  case smcR(version: UInt8)
  /// Proposal, Accept, Confirm with "SMCD" eyecatchers, then SMC-D CDC and data records.
  case smcD(version: UInt8)
  /// Proposal answered by a Decline with `code`; the data then flows over TCP.
  case decline(code: UInt32, version: UInt8)
  /// The server's SYN-ACK carries no SMC option; plain TCP follows.
  case peerNoSMC
}

/// Which host's captures to synthesize.
public enum Side: String, Sendable {
  case client, server
}

/// Deterministic pseudo-random numbers (SplitMix64), so fixtures are reproducible.
public struct SeededRandom: RandomNumberGenerator, Sendable {
  private var state: UInt64
  public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// One SMC connection between a client and a server, as both kernels would show it.
public struct ConversationSpec: Sendable {
  public var scenario: Scenario
  public var client: Endpoint
  public var server: Endpoint
  public var clientMAC: UInt64 = 0x02_00_00_00_00_01
  public var serverMAC: UInt64 = 0x02_00_00_00_00_02
  /// MACs of each host's dump device (src = dst = the device's own address).
  public var clientDumpMAC: UInt64 = 0x02_00_00_00_01_01
  public var serverDumpMAC: UInt64 = 0x02_00_00_00_01_02
  /// Messages the client sends; the server answers each with a cursor update.
  public var messages = 4
  public var messageSize = 1000
  /// RMBE size code (size = 1 << (code + 14)); small sizes exercise ring wraps.
  public var rmbeSizeCode: UInt8 = 0
  public var maxDataRecord = 8192
  public var dumpFormat = DumpHeaderFormat.declarationOrder
  /// Time of the client's SYN, ns since the epoch.
  public var startNanoseconds: Int64 = 1_764_000_000_000_000_000
  /// One-way delay and gap between messages.
  public var oneWayDelayNanoseconds: Int64 = 25_000
  public var gapNanoseconds: Int64 = 100_000
  public var seed: UInt64 = 1
  /// Fill the records of *received* SMC-D CDCs with garbage except the two cursors, as the
  /// kernel's dump does (only the cursors are meaningful there).
  public var receivedSMCDGarbage = false

  public init(scenario: Scenario, client: Endpoint, server: Endpoint) {
    self.scenario = scenario
    self.client = client
    self.server = server
  }
}

/// A frame one host captured.
public struct SyntheticFrame: Sendable {
  /// 0 = NIC (Ethernet), 1 = SMC dump device.
  public var interface: Int
  public var timeNanoseconds: Int64
  public var bytes: [UInt8]
  public var direction: PacketDirection
}

/// Generates what one host captures of a conversation: TCP on its NIC (both directions),
/// dump records on its dump device (what it sent and what it received), in time order.
public struct ConversationSynthesizer {
  public let spec: ConversationSpec
  public let side: Side

  public init(spec: ConversationSpec, side: Side) {
    self.spec = spec
    self.side = side
  }

  /// Calls `emit` for each frame in capture order.
  public func generate(_ emit: (SyntheticFrame) throws -> Void) rethrows {
    var rng = SeededRandom(seed: spec.seed)
    let s = spec
    let isClient = side == .client
    var now = s.startNanoseconds
    let delay = s.oneWayDelayNanoseconds
    var clientSeq = UInt32(truncatingIfNeeded: rng.next())
    var serverSeq = UInt32(truncatingIfNeeded: rng.next())
    var ipIDClient = UInt16(truncatingIfNeeded: rng.next())
    var ipIDServer = UInt16(truncatingIfNeeded: rng.next())
    let clientPeer = rng.next() & 0xFFFF_FFFF_FFFF
    let serverPeer = rng.next() & 0xFFFF_FFFF_FFFF
    let clientToken = UInt32(truncatingIfNeeded: rng.next()) | 1
    let serverToken = UInt32(truncatingIfNeeded: rng.next()) | 1

    // A TCP segment: the sender sees it at send time, the receiver one delay later.
    func segment(fromClient: Bool, flags: TCPFlags, payload: [UInt8] = [], smcOption: Bool = false) throws {
      let seq = fromClient ? clientSeq : serverSeq
      let ack = fromClient ? serverSeq : clientSeq
      let frame = FrameBuilder.tcp(
        sourceMAC: fromClient ? s.clientMAC : s.serverMAC,
        destinationMAC: fromClient ? s.serverMAC : s.clientMAC,
        source: fromClient ? s.client : s.server, destination: fromClient ? s.server : s.client,
        segment: .init(
          sequence: seq, acknowledgment: flags.contains(.ack) ? ack : 0, flags: flags, smcOption: smcOption),
        ipID: fromClient ? ipIDClient : ipIDServer, payload: payload)
      if fromClient { ipIDClient &+= 1 } else { ipIDServer &+= 1 }
      var advance = UInt32(payload.count)
      if flags.contains(.syn) || flags.contains(.fin) { advance += 1 }
      if fromClient { clientSeq &+= advance } else { serverSeq &+= advance }
      let sentHere = fromClient == isClient
      try emit(
        SyntheticFrame(
          interface: 0, timeNanoseconds: now + (sentHere ? 0 : delay), bytes: frame,
          direction: sentHere ? .outbound : .inbound))
      now += delay
    }

    let gid = (UInt64(0xFE80_0000_0000_0000), rng.next())
    let offerSMC: Bool
    switch s.scenario {
    case .peerNoSMC: offerSMC = false
    default: offerSMC = true
    }
    try segment(fromClient: true, flags: [.syn], smcOption: true)
    try segment(fromClient: false, flags: [.syn, .ack], smcOption: offerSMC)
    try segment(fromClient: true, flags: [.ack])
    now += s.gapNanoseconds

    var mode: SMCMode?
    var version: UInt8 = 1
    switch s.scenario {
    case .smcR(let v), .smcD(let v):
      version = v
      let isD: Bool
      if case .smcD = s.scenario { isD = true } else { isD = false }
      mode = isD ? .smcD : .smcR
      let proposal = CLCBuilder.proposal(
        version: v, pathV1: isD ? .smcD : .smcR, pathV2: v >= 2 ? (isD ? .smcD : .smcR) : .none,
        peerID: clientPeer, gid: gid, mac: s.clientMAC, ismGID: isD ? rng.next() : nil,
        subnet: s.client.address.isIPv6 ? 0 : s.client.address.ipv4 & 0xFFFF_FF00, prefixLength: 24)
      try segment(fromClient: true, flags: [.psh, .ack], payload: proposal)
      let accept: [UInt8]
      let confirm: [UInt8]
      if isD {
        accept = CLCBuilder.acceptConfirmD(
          .accept, version: v, firstContact: true, ismGID: rng.next(), dmbToken: UInt64(serverToken),
          dmbeSizeCode: s.rmbeSizeCode)
        confirm = CLCBuilder.acceptConfirmD(
          .confirm, version: v, firstContact: true, ismGID: rng.next(), dmbToken: UInt64(clientToken),
          dmbeSizeCode: s.rmbeSizeCode)
      } else {
        accept = CLCBuilder.acceptConfirmR(
          .accept, version: v, firstContact: true, peerID: serverPeer, gid: (gid.0, rng.next()),
          mac: s.serverMAC,
          qpNumber: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF,
          rmbRkey: UInt32(truncatingIfNeeded: rng.next()),
          alertToken: serverToken, rmbeSizeCode: s.rmbeSizeCode, rmbAddress: rng.next(),
          initialPSN: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF)
        confirm = CLCBuilder.acceptConfirmR(
          .confirm, version: v, firstContact: true, peerID: clientPeer, gid: gid, mac: s.clientMAC,
          qpNumber: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF,
          rmbRkey: UInt32(truncatingIfNeeded: rng.next()),
          alertToken: clientToken, rmbeSizeCode: s.rmbeSizeCode, rmbAddress: rng.next(),
          initialPSN: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF)
      }
      try segment(fromClient: false, flags: [.psh, .ack], payload: accept)
      try segment(fromClient: true, flags: [.psh, .ack], payload: confirm)
      try segment(fromClient: false, flags: [.ack])
    case .decline(let code, let v):
      version = v
      let proposal = CLCBuilder.proposal(
        version: v, pathV1: .smcR, peerID: clientPeer, gid: gid, mac: s.clientMAC,
        subnet: s.client.address.isIPv6 ? 0 : s.client.address.ipv4 & 0xFFFF_FF00, prefixLength: 24)
      try segment(fromClient: true, flags: [.psh, .ack], payload: proposal)
      try segment(
        fromClient: false, flags: [.psh, .ack],
        payload: CLCBuilder.decline(version: v, peerID: serverPeer, diagnosis: code))
    case .peerNoSMC:
      break
    }
    now += s.gapNanoseconds

    guard let mode else {
      // Fallback: the messages flow over TCP.
      for _ in 0..<s.messages {
        let payload = [UInt8](repeating: 0x61, count: min(s.messageSize, 1448))
        try segment(fromClient: true, flags: [.psh, .ack], payload: payload)
        try segment(fromClient: false, flags: [.ack])
        now += s.gapNanoseconds
      }
      try segment(fromClient: true, flags: [.fin, .ack])
      try segment(fromClient: false, flags: [.fin, .ack])
      try segment(fromClient: true, flags: [.ack])
      return
    }

    // SMC data phase: dump records on each host's dump device.
    let ringSize = UInt32(1 << (Int(s.rmbeSizeCode) + 14)) - (mode == .smcD ? 32 : 0)
    var clientProducer = CDCCursor(wrap: 0, count: 0)  // into the server's RMBE
    var serverConsumer = CDCCursor(wrap: 0, count: 0)
    var clientCDCSeq: UInt16 = 0
    var serverCDCSeq: UInt16 = 0
    let dump = s.dumpFormat

    func record(fromClient: Bool, isCDC: Bool, body: [UInt8], at time: Int64) throws {
      let sentHere = fromClient == isClient
      var body = body
      if isCDC && !sentHere && mode == .smcD && s.receivedSMCDGarbage {
        // Cursors at 8..<14 and 16..<22 survive; everything else, the type byte too, is noise.
        var noise = SeededRandom(seed: UInt64(bitPattern: time) ^ s.seed)
        for i in body.indices where !(8..<14).contains(i) && !(16..<22).contains(i) {
          body[i] = UInt8.random(in: 0...255, using: &noise)
        }
      }
      let mac = isClient ? s.clientDumpMAC : s.serverDumpMAC
      let bytes = FrameBuilder.udp(
        sourceMAC: mac, destinationMAC: mac, source: fromClient ? s.client : s.server,
        destination: fromClient ? s.server : s.client,
        payload: dump.record(mode: mode, smcVersion: version, isCDC: isCDC, body: body), checksum: false,
        ipChecksum: false)
      try emit(
        SyntheticFrame(
          interface: 1, timeNanoseconds: time, bytes: bytes, direction: sentHere ? .outbound : .inbound))
    }

    func cdcBody(_ message: CDCMessage) -> [UInt8] {
      if mode == .smcR {
        // 44-byte message + 4 bytes of buffer leftovers.
        return message.encodeSMCR() + [0xA5, 0x5A, 0xA5, 0x5A]
      }
      return message.encodeSMCD()
    }

    func advance(_ cursor: inout CDCCursor, by count: UInt32) {
      let total = UInt64(cursor.count) + UInt64(count)
      if total >= UInt64(ringSize) {
        cursor.wrap &+= 1
        cursor.count = UInt32(total - UInt64(ringSize))
      } else {
        cursor.count = UInt32(total)
      }
    }

    // Message bytes differ from message to message, as application data does.
    func payload(_ message: Int, _ count: Int) -> [UInt8] {
      (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ message &* 7 &+ 0x62) }
    }

    for index in 0..<s.messages {
      let last = index == s.messages - 1
      // Client produces messageSize bytes into the server's RMBE, split at the ring end and
      // at the maximum record size.
      var remaining = UInt32(s.messageSize)
      var chunks: [UInt32] = []
      var position = clientProducer.count
      while remaining > 0 {
        let untilWrap = ringSize - position
        let chunk = min(remaining, untilWrap, UInt32(s.maxDataRecord))
        chunks.append(chunk)
        remaining -= chunk
        position = (position + chunk) % ringSize
      }
      advance(&clientProducer, by: UInt32(s.messageSize))
      clientCDCSeq &+= 1  // 16-bit: 0xFFFF is followed by 0, as in the kernel
      let cdc = CDCMessage(
        mode: mode, sequenceNumber: mode == .smcR ? clientCDCSeq : nil,
        token: mode == .smcR ? serverToken : nil,
        producer: clientProducer, consumer: CDCCursor(wrap: 0, count: 0),
        producerFlags: [], connectionState: last ? [.peerDoneWriting] : [])
      let sendTime = now
      let receiveTime = now + delay
      if isClient {
        for chunk in chunks {
          try record(
            fromClient: true, isCDC: false, body: payload(index, Int(chunk)), at: sendTime)
        }
        try record(fromClient: true, isCDC: true, body: cdcBody(cdc), at: sendTime + 1_000)
      } else {
        for chunk in chunks {
          try record(
            fromClient: true, isCDC: false, body: payload(index, Int(chunk)), at: receiveTime
          )
        }
        try record(fromClient: true, isCDC: true, body: cdcBody(cdc), at: receiveTime + 1_000)
      }
      // Server consumes and answers with a consumer-cursor update.
      now = receiveTime + delay
      advance(&serverConsumer, by: UInt32(s.messageSize))
      serverCDCSeq &+= 1
      let reply = CDCMessage(
        mode: mode, sequenceNumber: mode == .smcR ? serverCDCSeq : nil,
        token: mode == .smcR ? clientToken : nil,
        producer: CDCCursor(wrap: 0, count: 0), consumer: serverConsumer, producerFlags: [],
        connectionState: last ? [.peerDoneWriting, .peerClosed] : [])
      try record(fromClient: false, isCDC: true, body: cdcBody(reply), at: isClient ? now + delay : now)
      now += delay + s.gapNanoseconds
    }
    // TCP close after the SMC connection ends.
    try segment(fromClient: true, flags: [.fin, .ack])
    try segment(fromClient: false, flags: [.fin, .ack])
    try segment(fromClient: true, flags: [.ack])
  }
}
