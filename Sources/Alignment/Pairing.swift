import CaptureFiles
import SMCWire

/// What kind of packet a pair is.
public enum PairKind: String, Sendable, CaseIterable {
  case tcp, clc, cdc, data
}

/// Identity of a packet that both hosts capture: direction, kind, a hash of the fields that
/// do not change in flight, and the occurrence (so retransmissions stay distinct).
struct PairKey: Hashable {
  var source: Endpoint
  var destination: Endpoint
  var kind: UInt8
  var hash: UInt64
  var occurrence: Int
}

/// One packet of one side, as the pairing needs it.
public struct SidePacket: Sendable {
  public var frame: Int
  public var interface: Int
  public var timeNanoseconds: Int64
  public var source: Endpoint
  public var destination: Endpoint
  public var kind: PairKind

  public init(
    frame: Int, interface: Int, timeNanoseconds: Int64, source: Endpoint, destination: Endpoint,
    kind: PairKind
  ) {
    self.frame = frame
    self.interface = interface
    self.timeNanoseconds = timeNanoseconds
    self.source = source
    self.destination = destination
    self.kind = kind
  }
}

/// A packet seen on both sides.
public struct PacketPair: Sendable {
  public var kind: PairKind
  public var clientToServer: Bool
  public var client: SidePacket
  public var server: SidePacket

  public init(kind: PairKind, clientToServer: Bool, client: SidePacket, server: SidePacket) {
    self.kind = kind
    self.clientToServer = clientToServer
    self.client = client
    self.server = server
  }

  public var times: PairedTimes {
    PairedTimes(
      clientToServer: clientToServer, clientNanoseconds: client.timeNanoseconds,
      serverNanoseconds: server.timeNanoseconds)
  }
}

/// Finds the packets two captures have in common: TCP segments (4-tuple, seq, ack, flags,
/// length, IP id), CDC records (4-tuple and the message bytes; seqno 0 is never paired) and
/// data records (4-tuple and content). The n-th copy on one side pairs with the n-th copy
/// on the other, so retransmissions and a sender's duplicated CDC stay distinct.
public struct PacketPairing {
  public private(set) var pairs: [PacketPair] = []
  public private(set) var clientPackets = 0
  public private(set) var serverPackets = 0
  /// Addresses that belong to the client host (SYN senders, or given).
  public private(set) var clientAddresses: Set<IPAddress>
  /// Pairable packets (CDC and data records, TCP segments) each side has and the other not.
  public private(set) var unpairedClient: [SidePacket] = []
  public private(set) var unpairedServer: [SidePacket] = []

  public init(clientAddresses: Set<IPAddress> = []) {
    self.clientAddresses = clientAddresses
  }

  /// Reads both files and pairs their packets.
  public static func pair(client: String, server: String, clientAddresses: Set<IPAddress> = [])
    throws(CaptureFileError)
    -> PacketPairing
  {
    var pairing = PacketPairing(clientAddresses: clientAddresses)
    var clientKeys: [PairKey: SidePacket] = [:]
    var counts: [PairKey: Int] = [:]
    var synSenders: Set<IPAddress> = []
    try walk(client) { packet, key, syn in
      pairing.clientPackets += 1
      if let syn { synSenders.insert(syn) }
      guard var key else { return }
      key.occurrence = 0
      let n = counts[key, default: 0]
      counts[key] = n + 1
      key.occurrence = n
      clientKeys[key] = packet
    }
    if pairing.clientAddresses.isEmpty { pairing.clientAddresses = synSenders }
    counts.removeAll()
    let clientSide = pairing.clientAddresses
    var found: [PacketPair] = []
    var unpairedServer: [SidePacket] = []
    try walk(server) { packet, key, _ in
      pairing.serverPackets += 1
      guard var key else { return }
      key.occurrence = 0
      let n = counts[key, default: 0]
      counts[key] = n + 1
      key.occurrence = n
      if let match = clientKeys.removeValue(forKey: key) {
        found.append(
          PacketPair(
            kind: packet.kind, clientToServer: clientSide.contains(packet.source.address), client: match,
            server: packet))
      } else {
        unpairedServer.append(packet)
      }
    }
    pairing.pairs = found
    pairing.unpairedServer = unpairedServer
    pairing.unpairedClient = clientKeys.values.sorted { $0.frame < $1.frame }
    return pairing
  }

  /// Calls `body` for every packet with its pairing key (nil when it cannot be paired) and
  /// the SYN sender address when it is a SYN.
  static func walk(
    _ path: String, _ body: (SidePacket, PairKey?, IPAddress?) -> Void
  ) throws(CaptureFileError) {
    let reader = try CaptureFileReader(path: path)
    while let packet = try reader.next() {
      let frame = FrameDecoder.decode(packet.data, linkType: reader.interfaces[packet.interface].linkType)
      guard frame.issue == nil else { continue }
      var side = SidePacket(
        frame: packet.frame, interface: packet.interface, timeNanoseconds: packet.timestampNanoseconds,
        source: frame.sourceEndpoint, destination: frame.destinationEndpoint, kind: .tcp)
      var hasher = FNV()
      var syn: IPAddress?
      if let tcp = frame.tcp {
        if tcp.flags.contains(.syn) && !tcp.flags.contains(.ack) { syn = frame.source }
        side.kind = CLCMessage.looksLikeCLC(frame.payload) ? .clc : .tcp
        hasher.add(UInt64(tcp.sequence))
        hasher.add(UInt64(tcp.acknowledgment))
        hasher.add(UInt64(tcp.flags.rawValue))
        hasher.add(UInt64(frame.wirePayloadLength))
        if frame.ipID != 0 { hasher.add(UInt64(frame.ipID)) }
      } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
        // The dump header may differ between hosts; the body after it may not. The body is
        // found from the end: CDC records are 48 (SMC-R) or 32 (SMC-D) bytes.
        let p = frame.payload
        if p.count >= 56, p.u8(p.count - 48) == 0xFE, p.u8(p.count - 47) == 0x2C {
          let message = p.slice(p.count - 48, 44)
          // RWWI records carry a synthesised seqno 0: never paired by it.
          guard message.u16be(2) != 0 else {
            body(side, nil, syn)
            continue
          }
          side.kind = .cdc
          hasher.add(message)
        } else {
          side.kind = .data
          hasher.add(UInt64(p.count))
          hasher.add(p.slice(max(0, p.count - 256), min(256, p.count)))
        }
      } else {
        body(side, nil, syn)
        continue
      }
      let key = PairKey(
        source: side.source, destination: side.destination, kind: kindCode(side.kind), hash: hasher.value,
        occurrence: 0)
      body(side, key, syn)
    }
  }

  static func kindCode(_ kind: PairKind) -> UInt8 {
    switch kind {
    case .tcp, .clc: 0
    case .cdc: 1
    case .data: 2
    }
  }
}

/// FNV-1a, 64 bit.
struct FNV {
  var value: UInt64 = 0xCBF2_9CE4_8422_2325

  mutating func add(_ v: UInt64) {
    for shift in stride(from: 0, to: 64, by: 8) {
      value = (value ^ ((v >> UInt64(shift)) & 0xFF)) &* 0x100_0000_01B3
    }
  }

  mutating func add(_ bytes: UnsafeRawBufferPointer) {
    for byte in bytes { value = (value ^ UInt64(byte)) &* 0x100_0000_01B3 }
  }
}
