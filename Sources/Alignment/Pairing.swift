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

  /// One combine: the content hash already mixes most fields, and lookups happen per packet.
  func hash(into hasher: inout Hasher) {
    var h = hash ^ UInt64(kind) << 56
    h ^= (UInt64(source.port) << 16 | UInt64(destination.port)) &* 0xC2B2_AE3D_27D4_EB4F
    h ^= source.address.low &* 0x1656_67B1_9E37_79F9 ^ destination.address.low
    hasher.combine(h)
  }
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
    // Client packets in one array; the dictionary maps a key to the first and last packet
    // with that key, and `nextSame` chains the rest in order, so the n-th copy on one side
    // meets the n-th copy on the other (FIFO) with one hash operation per packet.
    let estimate = max(1024, Int((try? MappedFile(path: client))?.bytes.count ?? 0) / 250)
    var packets: [SidePacket] = []
    packets.reserveCapacity(estimate)
    var nextSame: [Int32] = []
    nextSame.reserveCapacity(estimate)
    var chains: [PairKey: (first: Int32, last: Int32)] = Dictionary(minimumCapacity: estimate)
    var synSenders: Set<IPAddress> = []
    try walk(client) { packet, key, syn in
      pairing.clientPackets += 1
      if let syn { synSenders.insert(syn) }
      guard let key else { return }
      let index = Int32(packets.count)
      packets.append(packet)
      nextSame.append(-1)
      modify(&chains[key, default: (index, -1)])
      func modify(_ chain: inout (first: Int32, last: Int32)) {
        if chain.last >= 0 { nextSame[Int(chain.last)] = index }
        chain.last = index
      }
    }
    if pairing.clientAddresses.isEmpty { pairing.clientAddresses = synSenders }
    let clientSide = pairing.clientAddresses
    var consumed = [Bool](repeating: false, count: packets.count)
    var found: [PacketPair] = []
    found.reserveCapacity(packets.count)
    var unpairedServer: [SidePacket] = []
    try walk(server) { packet, key, _ in
      pairing.serverPackets += 1
      guard let key else { return }
      guard let slot = chains.index(forKey: key) else {
        unpairedServer.append(packet)
        return
      }
      let first = chains.values[slot].first
      let following = nextSame[Int(first)]
      if following >= 0 {
        chains.values[slot].first = following
      } else {
        chains.remove(at: slot)
      }
      consumed[Int(first)] = true
      found.append(
        PacketPair(
          kind: packet.kind, clientToServer: clientSide.contains(packet.source.address),
          client: packets[Int(first)],
          server: packet))
    }
    pairing.pairs = found
    pairing.unpairedServer = unpairedServer
    pairing.unpairedClient = packets.indices.filter { !consumed[$0] }.map { packets[$0] }
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
