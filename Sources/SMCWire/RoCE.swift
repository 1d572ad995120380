import CaptureFiles

/// The InfiniBand Base Transport Header (12 bytes) at the start of a RoCEv2 UDP payload.
public struct InfiniBandBTH: Sendable, Hashable {
  public static let length = 12

  public var opcode: UInt8
  /// Bytes added after the payload to reach a multiple of 4 (they precede the ICRC).
  public var padCount: Int
  public var partitionKey: UInt16
  /// The receiver's queue pair: for SMC-R, the QP of the link the message travels on.
  public var destinationQP: UInt32
  public var ackRequested: Bool
  public var packetSequenceNumber: UInt32

  /// Decodes the 12 bytes at the start of `b` (nil when fewer).
  public init?(_ b: UnsafeRawBufferPointer) {
    guard b.count >= Self.length else { return nil }
    opcode = b.u8(0)
    padCount = Int(b.u8(1) >> 4) & 0x3
    partitionKey = b.u16be(2)
    destinationQP = b.u32be(4) & 0x00FF_FFFF
    ackRequested = b.u8(8) & 0x80 != 0
    packetSequenceNumber = b.u32be(8) & 0x00FF_FFFF
  }

  /// The transport (top 3 bits of the opcode): 0 is Reliable Connected, what SMC-R uses.
  public var isReliableConnected: Bool { opcode >> 5 == 0 }

  /// The RC operation (low 5 bits of the opcode), as the InfiniBand specification names it.
  public var operation: RCOperation? { isReliableConnected ? RCOperation(rawValue: opcode & 0x1F) : nil }
}

/// The Reliable Connected opcodes (InfiniBand Architecture Specification vol. 1, table 38),
/// with the extension headers each carries after the BTH.
public enum RCOperation: UInt8, Sendable, CaseIterable {
  case sendFirst = 0x00, sendMiddle, sendLast, sendLastWithImmediate, sendOnly, sendOnlyWithImmediate
  case rdmaWriteFirst = 0x06, rdmaWriteMiddle, rdmaWriteLast, rdmaWriteLastWithImmediate, rdmaWriteOnly
  case rdmaWriteOnlyWithImmediate = 0x0B
  case rdmaReadRequest = 0x0C, rdmaReadResponseFirst, rdmaReadResponseMiddle, rdmaReadResponseLast
  case rdmaReadResponseOnly = 0x10, acknowledge, atomicAcknowledge, compareSwap, fetchAdd
  case sendLastWithInvalidate = 0x16, sendOnlyWithInvalidate

  /// The name Wireshark shows, e.g. "Send Only", "RDMA Write Only with Immediate".
  public var name: String {
    switch self {
    case .sendFirst: "Send First"
    case .sendMiddle: "Send Middle"
    case .sendLast: "Send Last"
    case .sendLastWithImmediate: "Send Last with Immediate"
    case .sendOnly: "Send Only"
    case .sendOnlyWithImmediate: "Send Only with Immediate"
    case .rdmaWriteFirst: "RDMA Write First"
    case .rdmaWriteMiddle: "RDMA Write Middle"
    case .rdmaWriteLast: "RDMA Write Last"
    case .rdmaWriteLastWithImmediate: "RDMA Write Last with Immediate"
    case .rdmaWriteOnly: "RDMA Write Only"
    case .rdmaWriteOnlyWithImmediate: "RDMA Write Only with Immediate"
    case .rdmaReadRequest: "RDMA Read Request"
    case .rdmaReadResponseFirst: "RDMA Read Response First"
    case .rdmaReadResponseMiddle: "RDMA Read Response Middle"
    case .rdmaReadResponseLast: "RDMA Read Response Last"
    case .rdmaReadResponseOnly: "RDMA Read Response Only"
    case .acknowledge: "Acknowledge"
    case .atomicAcknowledge: "Atomic Acknowledge"
    case .compareSwap: "Compare Swap"
    case .fetchAdd: "Fetch Add"
    case .sendLastWithInvalidate: "Send Last with Invalidate"
    case .sendOnlyWithInvalidate: "Send Only with Invalidate"
    }
  }

  /// Bytes of extension headers between the BTH and the payload (RETH 16, AETH 4, ImmDt 4,
  /// IETH 4, AtomicETH 28, AtomicAckETH 8).
  var extensionLength: Int {
    switch self {
    case .sendFirst, .sendMiddle, .sendLast, .sendOnly, .rdmaWriteMiddle, .rdmaWriteLast,
      .rdmaReadResponseMiddle:
      0
    case .sendLastWithImmediate, .sendOnlyWithImmediate, .rdmaWriteLastWithImmediate, .sendLastWithInvalidate,
      .sendOnlyWithInvalidate:
      4
    case .rdmaWriteFirst, .rdmaWriteOnly, .rdmaReadRequest: 16
    case .rdmaWriteOnlyWithImmediate: 20
    case .rdmaReadResponseFirst, .rdmaReadResponseLast, .rdmaReadResponseOnly, .acknowledge: 4
    case .atomicAcknowledge: 12
    case .compareSwap, .fetchAdd: 28
    }
  }

  /// Where the 4-byte immediate data sits in the extension headers, for the opcodes that carry one.
  var immediateOffset: Int? {
    switch self {
    case .sendLastWithImmediate, .sendOnlyWithImmediate, .rdmaWriteLastWithImmediate: 0
    case .rdmaWriteOnlyWithImmediate: 16
    default: nil
    }
  }

  /// An RDMA WRITE packet: what carries SMC-R data into the peer's RMB.
  public var isRDMAWrite: Bool { (0x06...0x0B).contains(rawValue) }
}

/// A RoCEv2 packet's SMC-relevant view: the BTH, the immediate data when the opcode has one,
/// and the message payload (extension headers, pad bytes and the 4-byte ICRC removed).
public struct RoCEv2Packet {
  /// The IANA-assigned UDP destination port of RoCEv2.
  public static let udpPort: UInt16 = 4791
  static let icrcLength = 4

  public var bth: InfiniBandBTH
  public var immediate: UInt32?
  /// The payload bytes present in the capture (a snapshot length may cut them).
  public var payload: UnsafeRawBufferPointer
  /// The payload length on the wire.
  public var wirePayloadLength: Int

  /// Decodes a UDP datagram to port 4791; nil when it is not an RC RoCEv2 packet this
  /// decoder knows (UD and other transports, unknown opcodes, headers cut short).
  public init?(_ frame: Frame) {
    guard frame.isUDP, frame.destinationPort == Self.udpPort, let bth = InfiniBandBTH(frame.payload),
      let operation = bth.operation
    else { return nil }
    let headers = InfiniBandBTH.length + operation.extensionLength
    guard frame.payload.count >= headers else { return nil }
    self.bth = bth
    if let at = operation.immediateOffset { immediate = frame.payload.u32be(InfiniBandBTH.length + at) }
    wirePayloadLength = max(0, frame.wirePayloadLength - headers - bth.padCount - Self.icrcLength)
    payload = frame.payload.slice(headers, min(frame.payload.count - headers, wirePayloadLength))
  }

  /// What the packet carries for SMC-R.
  public var content: RoCEContent {
    guard let operation = bth.operation else { return .other }
    switch operation {
    case .sendOnly:
      if let cdc = CDCMessage.decodeSMCR(payload) { return .cdc(cdc) }
      if let llc = LLCMessage.decode(payload) { return .llc(llc) }
      return .other
    case _ where operation.isRDMAWrite:
      return .rdmaWrite(length: wirePayloadLength)
    default:
      return .other
    }
  }

  /// The 44 bytes of the CDC message a SEND ONLY carries, nil for anything else: what both
  /// hosts see identically, so what pairing keys it by (with the BTH's QP and PSN).
  public var cdcBytes: UnsafeRawBufferPointer? {
    guard bth.operation == .sendOnly, CDCMessage.decodeSMCR(payload) != nil else { return nil }
    return payload.slice(0, CDCMessage.smcRLength)
  }
}

/// What a RoCEv2 packet carries for SMC-R.
public enum RoCEContent {
  case cdc(CDCMessage)
  case llc(LLCMessage)
  /// SMC-R data written into the peer's RMB, or another RDMA application's write: the packet
  /// alone does not say which.
  case rdmaWrite(length: Int)
  /// Acknowledgements, reads, and SENDs that are neither a CDC nor an LLC message.
  case other
}

/// The RoCEv2 fields an event keeps: which queue pair and packet it came in.
public struct RoCEv2Fields: Sendable, Hashable {
  public var operation: String
  public var destinationQP: UInt32
  public var packetSequenceNumber: UInt32
  public var immediate: UInt32?
}

extension EventPass {
  /// A RoCEv2 packet on the RDMA NIC: a CDC or LLC message (SEND ONLY) or an RDMA WRITE.
  /// The addresses and UDP ports are the RDMA NICs' (GIDs), not the TCP connection's: the
  /// event says which link (destination QP) and, for a CDC, which RMBE (token) it is for.
  /// False when the packet carries nothing SMC-related.
  mutating func emitRoCE(
    _ roce: RoCEv2Packet, _ frame: Frame, _ packet: CapturedPacket, summary: inout DecodeSummary,
    _ body: (SMCEvent) -> Void
  ) -> Bool {
    let content = roce.content
    summary.roce.note(roce, frame, content)
    var event = SMCEvent(
      kind: .cdc, frame: packet.frame, time: packet.timestampNanoseconds, interface: packet.interface,
      source: frame.sourceEndpoint, destination: frame.destinationEndpoint)
    event.direction = packet.direction
    event.roce = RoCEv2Fields(
      operation: roce.bth.operation?.name ?? "opcode \(roce.bth.opcode)",
      destinationQP: roce.bth.destinationQP,
      packetSequenceNumber: roce.bth.packetSequenceNumber, immediate: roce.immediate)
    switch content {
    case .cdc(let message):
      event.cdc = message
      event.mode = .smcR
    case .llc(let message):
      event.kind = .llc
      event.llc = message
      event.mode = .smcR
      if roce.payload.count < message.length {
        event.note = "LLC message cut short: \(roce.payload.count) of its \(message.length) bytes are here"
      }
    case .rdmaWrite(let length):
      event.kind = .data
      event.dataLength = length
      if let immediate = roce.immediate {
        event.note =
          "RDMA write with immediate 0x\(EventHex.digits(immediate, 8)) (ANCK's RWWI mode writes data with an immediate instead of a CDC message; the immediate's layout is not established, so no CDC fields are decoded and it is not paired)"
      }
    case .other:
      return false
    }
    body(event)
    counts[event.kind.index] += 1
    return true
  }
}

/// Fixed-width lowercase hex for notes.
enum EventHex {
  static func digits(_ value: UInt32, _ count: Int) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, count - text.count)) + text
  }
}

extension IPAddress {
  /// The address a RoCEv2 packet carries for a GID as CLC messages announce it: an
  /// IPv4-mapped GID (`::ffff:a.b.c.d`) is the IPv4 address, any other GID the IPv6 one.
  public init(roceGID gid: (UInt64, UInt64)) {
    if gid.0 == 0 && gid.1 >> 32 == 0xFFFF {
      self.init(ipv4: UInt32(truncatingIfNeeded: gid.1))
    } else {
      self.init(ipv6High: gid.0, low: gid.1)
    }
  }
}

/// What a RoCEv2 CDC is addressed to: the receiver's GID (the packet's destination
/// address), its queue pair and its RMBE alert token. A CLC Accept (server) or Confirm
/// (client) announces all three for its sender, so the two together name one TCP
/// connection; without that CLC message in the capture, nothing does.
public struct RoCEReceiver: Hashable, Sendable {
  public var address: IPAddress
  public var queuePair: UInt32
  public var token: UInt32

  public init(address: IPAddress, queuePair: UInt32, token: UInt32) {
    self.address = address
    self.queuePair = queuePair
    self.token = token
  }

  /// The receiver an SMC-R Accept or Confirm announces for its sender (nil for others).
  public init?(announcedBy message: CLCMessage) {
    guard message.kind == .accept || message.kind == .confirm, let gid = message.gid,
      let queuePair = message.qpNumber, let token = message.alertToken
    else { return nil }
    self.init(address: IPAddress(roceGID: gid), queuePair: queuePair, token: token)
  }
}

/// What a decode found in RoCEv2 packets (an RDMA NIC's capture).
public struct RoCESummary: Sendable {
  /// RC packets to UDP 4791 that were read (acknowledgements and others included).
  public var packets = 0
  public var cdcMessages = 0
  public var llcMessages = 0
  public var rdmaWrites = 0
  /// RDMA writes with immediate data (ANCK's RWWI mode, whose immediate is not decoded).
  public var rdmaWritesWithImmediate = 0
  /// The links seen: (sender address, receiver address, receiver QP).
  public var links: Set<Link> = []

  public struct Link: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var queuePair: UInt32
  }

  mutating func note(_ roce: RoCEv2Packet, _ frame: Frame, _ content: RoCEContent) {
    packets += 1
    switch content {
    case .cdc: cdcMessages += 1
    case .llc: llcMessages += 1
    case .rdmaWrite:
      rdmaWrites += 1
      if roce.immediate != nil { rdmaWritesWithImmediate += 1 }
    case .other: return
    }
    links.insert(
      Link(source: frame.source, destination: frame.destination, queuePair: roce.bth.destinationQP))
  }
}

extension SMCEvent {
  /// The stream per-direction checks follow (seqno gaps, cursor regressions): `src -> dst`;
  /// for a RoCE CDC, whose link carries many connections' CDCs, also the receiver's QP and
  /// token, which tell the connections on one link apart.
  public var streamName: String {
    guard let roce, let token = cdc?.token else { return "\(source) -> \(destination)" }
    return "\(source) -> \(destination) qp 0x\(String(roce.destinationQP, radix: 16)) token \(token)"
  }
}
