import Alignment
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
    var run = SynthesisRun(spec: spec, isClient: side == .client)
    try run.openTCP(emit)
    let negotiated = try run.negotiate(emit)
    run.now += spec.gapNanoseconds
    if let mode = negotiated.mode {
      var data = SMCDataPhase(spec: spec, run: run, mode: mode, version: negotiated.version)
      try data.exchange(&run, emit)
    } else {
      try run.exchangeOverTCP(emit)
    }
    // TCP close after the conversation ends.
    try run.segment(fromClient: true, flags: [.fin, .ack], emit)
    try run.segment(fromClient: false, flags: [.fin, .ack], emit)
    try run.segment(fromClient: true, flags: [.ack], emit)
  }
}

/// The state of one synthesis: the clock, TCP sequence numbers and IP ids, and the random
/// identities (peer ids, tokens, GID) drawn in a fixed order from the seed, so the same spec
/// always gives the same bytes.
struct SynthesisRun {
  let spec: ConversationSpec
  let isClient: Bool
  var rng: SeededRandom
  var now: Int64
  var clientSeq: UInt32
  var serverSeq: UInt32
  var ipIDClient: UInt16
  var ipIDServer: UInt16
  let clientPeer: UInt64
  let serverPeer: UInt64
  let clientToken: UInt32
  let serverToken: UInt32
  let gid: (UInt64, UInt64)

  init(spec: ConversationSpec, isClient: Bool) {
    self.spec = spec
    self.isClient = isClient
    var rng = SeededRandom(seed: spec.seed)
    now = spec.startNanoseconds
    clientSeq = UInt32(truncatingIfNeeded: rng.next())
    serverSeq = UInt32(truncatingIfNeeded: rng.next())
    ipIDClient = UInt16(truncatingIfNeeded: rng.next())
    ipIDServer = UInt16(truncatingIfNeeded: rng.next())
    clientPeer = rng.next() & 0xFFFF_FFFF_FFFF
    serverPeer = rng.next() & 0xFFFF_FFFF_FFFF
    clientToken = UInt32(truncatingIfNeeded: rng.next()) | 1
    serverToken = UInt32(truncatingIfNeeded: rng.next()) | 1
    gid = (UInt64(0xFE80_0000_0000_0000), rng.next())
    self.rng = rng
  }

  /// A TCP segment: the sender sees it at send time, the receiver one delay later.
  mutating func segment(
    fromClient: Bool, flags: TCPFlags, payload: [UInt8] = [], smcOption: Bool = false,
    _ emit: (SyntheticFrame) throws -> Void
  ) rethrows {
    let s = spec
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
        interface: 0, timeNanoseconds: now + (sentHere ? 0 : s.oneWayDelayNanoseconds), bytes: frame,
        direction: sentHere ? .outbound : .inbound))
    now += s.oneWayDelayNanoseconds
  }

  /// The three-way handshake; the server's SYN-ACK offers SMC unless the peer has none.
  mutating func openTCP(_ emit: (SyntheticFrame) throws -> Void) rethrows {
    let offerSMC = spec.scenario != .peerNoSMC
    try segment(fromClient: true, flags: [.syn], smcOption: true, emit)
    try segment(fromClient: false, flags: [.syn, .ack], smcOption: offerSMC, emit)
    try segment(fromClient: true, flags: [.ack], emit)
    now += spec.gapNanoseconds
  }

  /// The CLC handshake of the scenario: the negotiated mode (nil: TCP from here on) and the
  /// CLC version.
  mutating func negotiate(_ emit: (SyntheticFrame) throws -> Void) rethrows -> (
    mode: SMCMode?, version: UInt8
  ) {
    switch spec.scenario {
    case .smcR(let version):
      try negotiateSMC(version: version, isD: false, emit)
      return (.smcR, version)
    case .smcD(let version):
      try negotiateSMC(version: version, isD: true, emit)
      return (.smcD, version)
    case .decline(let code, let version):
      let proposal = CLCBuilder.proposal(
        version: version, pathV1: .smcR, peerID: clientPeer, gid: gid, mac: spec.clientMAC,
        subnet: spec.client.address.isIPv6 ? 0 : spec.client.address.ipv4 & 0xFFFF_FF00, prefixLength: 24)
      try segment(fromClient: true, flags: [.psh, .ack], payload: proposal, emit)
      try segment(
        fromClient: false, flags: [.psh, .ack],
        payload: CLCBuilder.decline(version: version, peerID: serverPeer, diagnosis: code), emit)
      return (nil, version)
    case .peerNoSMC:
      return (nil, 1)
    }
  }

  /// Proposal, Accept, Confirm (SMC-R or SMC-D) and the server's ACK.
  mutating func negotiateSMC(version v: UInt8, isD: Bool, _ emit: (SyntheticFrame) throws -> Void) rethrows {
    let s = spec
    let proposal = CLCBuilder.proposal(
      version: v, pathV1: isD ? .smcD : .smcR, pathV2: v >= 2 ? (isD ? .smcD : .smcR) : .none,
      peerID: clientPeer, gid: gid, mac: s.clientMAC, ismGID: isD ? rng.next() : nil,
      subnet: s.client.address.isIPv6 ? 0 : s.client.address.ipv4 & 0xFFFF_FF00, prefixLength: 24)
    try segment(fromClient: true, flags: [.psh, .ack], payload: proposal, emit)
    let (accept, confirm) = isD ? acceptConfirmD(version: v) : acceptConfirmR(version: v)
    try segment(fromClient: false, flags: [.psh, .ack], payload: accept, emit)
    try segment(fromClient: true, flags: [.psh, .ack], payload: confirm, emit)
    try segment(fromClient: false, flags: [.ack], emit)
  }

  mutating func acceptConfirmD(version v: UInt8) -> (accept: [UInt8], confirm: [UInt8]) {
    let accept = CLCBuilder.acceptConfirmD(
      .accept, version: v, firstContact: true, ismGID: rng.next(), dmbToken: UInt64(serverToken),
      dmbeSizeCode: spec.rmbeSizeCode)
    let confirm = CLCBuilder.acceptConfirmD(
      .confirm, version: v, firstContact: true, ismGID: rng.next(), dmbToken: UInt64(clientToken),
      dmbeSizeCode: spec.rmbeSizeCode)
    return (accept, confirm)
  }

  mutating func acceptConfirmR(version v: UInt8) -> (accept: [UInt8], confirm: [UInt8]) {
    let s = spec
    let accept = CLCBuilder.acceptConfirmR(
      .accept, version: v, firstContact: true, peerID: serverPeer, gid: (gid.0, rng.next()),
      mac: s.serverMAC,
      qpNumber: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF,
      rmbRkey: UInt32(truncatingIfNeeded: rng.next()),
      alertToken: serverToken, rmbeSizeCode: s.rmbeSizeCode, rmbAddress: rng.next(),
      initialPSN: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF)
    let confirm = CLCBuilder.acceptConfirmR(
      .confirm, version: v, firstContact: true, peerID: clientPeer, gid: gid, mac: s.clientMAC,
      qpNumber: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF,
      rmbRkey: UInt32(truncatingIfNeeded: rng.next()),
      alertToken: clientToken, rmbeSizeCode: s.rmbeSizeCode, rmbAddress: rng.next(),
      initialPSN: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFFFF)
    return (accept, confirm)
  }

  /// Fallback: the messages flow over TCP.
  mutating func exchangeOverTCP(_ emit: (SyntheticFrame) throws -> Void) rethrows {
    for _ in 0..<spec.messages {
      let payload = [UInt8](repeating: 0x61, count: min(spec.messageSize, 1448))
      try segment(fromClient: true, flags: [.psh, .ack], payload: payload, emit)
      try segment(fromClient: false, flags: [.ack], emit)
      now += spec.gapNanoseconds
    }
  }
}

/// The SMC data phase: dump records on each host's dump device — the client's data and CDC
/// into the server's ring, the server's consumer-cursor updates back.
struct SMCDataPhase {
  let spec: ConversationSpec
  let isClient: Bool
  let mode: SMCMode
  let version: UInt8
  let ringSize: UInt32
  /// The tokens each side's CDC messages carry (SMC-R: the peer's alert token).
  let clientToken: UInt32
  let serverToken: UInt32
  var clientProducer = CDCCursor(wrap: 0, count: 0)  // into the server's RMBE
  var serverConsumer = CDCCursor(wrap: 0, count: 0)
  var clientCDCSeq: UInt16 = 0
  var serverCDCSeq: UInt16 = 0

  init(spec: ConversationSpec, run: SynthesisRun, mode: SMCMode, version: UInt8) {
    self.spec = spec
    isClient = run.isClient
    clientToken = run.clientToken
    serverToken = run.serverToken
    self.mode = mode
    self.version = version
    ringSize = UInt32(1 << (Int(spec.rmbeSizeCode) + 14)) - (mode == .smcD ? 32 : 0)
  }

  mutating func exchange(_ run: inout SynthesisRun, _ emit: (SyntheticFrame) throws -> Void) rethrows {
    let delay = spec.oneWayDelayNanoseconds
    for index in 0..<spec.messages {
      // A message larger than the peer's ring goes in ring-sized writes, each waiting for the
      // consumer's update, as a kernel sender must (it may never run the producer past the
      // consumer).
      var left = UInt32(spec.messageSize)
      repeat {
        let size = min(left, ringSize)
        left -= size
        let last = index == spec.messages - 1 && left == 0
        let receiveTime = run.now + delay
        try sendMessage(index, size: size, last: last, at: isClient ? run.now : receiveTime, emit)
        // Server consumes and answers with a consumer-cursor update.
        run.now = receiveTime + delay
        try answer(size: size, last: last, at: isClient ? run.now + delay : run.now, emit)
        run.now += delay + (left == 0 ? spec.gapNanoseconds : 0)
      } while left > 0
    }
  }

  /// The client produces `size` bytes (at most the ring) into the server's RMBE (data records
  /// split at the ring end and at the maximum record size), then its CDC; `time` is when this
  /// host sees it.
  mutating func sendMessage(
    _ index: Int, size: UInt32, last: Bool, at time: Int64, _ emit: (SyntheticFrame) throws -> Void
  ) rethrows {
    let chunks = chunks(of: size, from: clientProducer.count)
    Self.advance(&clientProducer, by: size, ringSize: ringSize)
    clientCDCSeq &+= 1  // 16-bit: 0xFFFF is followed by 0, as in the kernel
    let cdc = CDCMessage(
      mode: mode, sequenceNumber: mode == .smcR ? clientCDCSeq : nil,
      token: mode == .smcR ? serverToken : nil,
      producer: clientProducer, consumer: CDCCursor(wrap: 0, count: 0),
      producerFlags: [], connectionState: last ? [.peerDoneWriting] : [])
    for chunk in chunks {
      try record(fromClient: true, isCDC: false, body: Self.payload(index, Int(chunk)), at: time, emit)
    }
    try record(fromClient: true, isCDC: true, body: cdcBody(cdc), at: time + 1_000, emit)
  }
}

extension SMCDataPhase {
  /// The server's consumer-cursor update for the `size` bytes it consumed.
  mutating func answer(
    size: UInt32, last: Bool, at time: Int64, _ emit: (SyntheticFrame) throws -> Void
  ) rethrows {
    Self.advance(&serverConsumer, by: size, ringSize: ringSize)
    serverCDCSeq &+= 1
    let reply = CDCMessage(
      mode: mode, sequenceNumber: mode == .smcR ? serverCDCSeq : nil,
      token: mode == .smcR ? clientToken : nil,
      producer: CDCCursor(wrap: 0, count: 0), consumer: serverConsumer, producerFlags: [],
      connectionState: last ? [.peerDoneWriting, .peerClosed] : [])
    try record(fromClient: false, isCDC: true, body: cdcBody(reply), at: time, emit)
  }

  /// One dump record as this host's dump device shows it.
  func record(
    fromClient: Bool, isCDC: Bool, body: [UInt8], at time: Int64, _ emit: (SyntheticFrame) throws -> Void
  ) rethrows {
    let sentHere = fromClient == isClient
    var body = body
    if isCDC && !sentHere && mode == .smcD && spec.receivedSMCDGarbage {
      // Cursors at 8..<14 and 16..<22 survive; everything else, the type byte too, is noise.
      var noise = SeededRandom(seed: UInt64(bitPattern: time) ^ spec.seed)
      for i in body.indices where !(8..<14).contains(i) && !(16..<22).contains(i) {
        body[i] = UInt8.random(in: 0...255, using: &noise)
      }
    }
    let mac = isClient ? spec.clientDumpMAC : spec.serverDumpMAC
    let bytes = FrameBuilder.udp(
      sourceMAC: mac, destinationMAC: mac, source: fromClient ? spec.client : spec.server,
      destination: fromClient ? spec.server : spec.client,
      payload: spec.dumpFormat.record(mode: mode, smcVersion: version, isCDC: isCDC, body: body),
      checksum: false, ipChecksum: false)
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

  /// The data record sizes of one write of `size` bytes from ring position `position`.
  func chunks(of size: UInt32, from position: UInt32) -> [UInt32] {
    var remaining = size
    var chunks: [UInt32] = []
    var position = position
    while remaining > 0 {
      let untilWrap = ringSize - position
      let chunk = min(remaining, untilWrap, UInt32(spec.maxDataRecord))
      chunks.append(chunk)
      remaining -= chunk
      position = (position + chunk) % ringSize
    }
    return chunks
  }

  /// Moves `cursor` on by `count` bytes in a ring of `ringSize`.
  static func advance(_ cursor: inout CDCCursor, by count: UInt32, ringSize: UInt32) {
    let total = UInt64(cursor.count) + UInt64(count)
    if total >= UInt64(ringSize) {
      cursor.wrap &+= 1
      cursor.count = UInt32(total - UInt64(ringSize))
    } else {
      cursor.count = UInt32(total)
    }
  }

  /// Message bytes differ from message to message, as application data does.
  static func payload(_ message: Int, _ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ message &* 7 &+ 0x62) }
  }
}
