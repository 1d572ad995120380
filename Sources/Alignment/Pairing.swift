import CaptureFiles
import SMCWire

/// What kind of packet a pair is.
public enum PairKind: String, Sendable, CaseIterable {
  case tcp, clc, cdc, data

  /// The kind's position in `allCases`: its number in pair logs, the HTML page's data and
  /// per-kind counts.
  public var index: Int {
    switch self {
    case .tcp: 0
    case .clc: 1
    case .cdc: 2
    case .data: 3
    }
  }
}

/// Identity of a packet that both hosts capture: a 64-bit fingerprint of its direction
/// (addresses and ports), kind and the fields that do not change in flight.
enum PairFingerprint {
  static func of(_ source: Endpoint, _ destination: Endpoint, kind: UInt8, content: UInt64) -> UInt64 {
    var h = mix(content ^ UInt64(kind) << 56)
    h = mix(h ^ (UInt64(source.port) << 16 | UInt64(destination.port)))
    h = mix(h ^ source.address.low ^ source.address.high &* 0x9E37_79B9_7F4A_7C15)
    return mix(h ^ destination.address.low ^ destination.address.high &* 0xC2B2_AE3D_27D4_EB4F)
  }

  /// The murmur3 64-bit finaliser: every input bit moves every output bit.
  static func mix(_ value: UInt64) -> UInt64 {
    var x = value
    x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
    x = (x ^ (x >> 33)) &* 0xC4CE_B9FE_1A85_EC53
    return x ^ (x >> 33)
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
  /// The direction the capturing host recorded (pcapng flags; Linux cooked packet type for
  /// TCP), `.unknown` when the file does not say.
  public var recorded: PacketDirection

  public init(
    frame: Int, interface: Int, timeNanoseconds: Int64, source: Endpoint, destination: Endpoint,
    kind: PairKind, recorded: PacketDirection = .unknown
  ) {
    self.frame = frame
    self.interface = interface
    self.timeNanoseconds = timeNanoseconds
    self.source = source
    self.destination = destination
    self.kind = kind
    self.recorded = recorded
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
/// on the other, so retransmissions and a sender's duplicated CDC stay distinct. Which host
/// sent each pair is decided afterwards from the captures (`DirectionResolver`).
public struct PacketPairing {
  /// Pairs with a known direction, in client time order.
  public private(set) var pairs: [PacketPair] = []
  /// Pairs whose direction could not be told (not used for the clock model).
  public private(set) var undirected: [PacketPair] = []
  public private(set) var clientPackets = 0
  /// Time of the client capture's first packet (the clock model's reference).
  public private(set) var clientStart: Int64?
  public private(set) var serverPackets = 0
  /// Which addresses belong to which capture's host, and why.
  public private(set) var hosts = HostAddresses()
  /// Pairs whose two copies carry the same timestamp (a file merged with itself has only these).
  public private(set) var sameTimePairs = 0
  /// Pairable packets (CDC and data records, TCP segments) each side has and the other not.
  public private(set) var unpairedClient: [SidePacket] = []
  public private(set) var unpairedServer: [SidePacket] = []

  /// Reads both files (the first `limit` packets of each) and pairs their packets. `keyers`
  /// (client, server) are calibrated from the files when not given; `clientAddresses`
  /// overrides the direction evidence for the addresses it names.
  public static func pair(
    client: String, server: String, clientAddresses: Set<IPAddress> = [], limit: Int = .max,
    keyers: PerSide<PacketKeyer>? = nil, observer: (any PairingWalkObserver)? = nil
  )
    throws(CaptureFileError)
    -> PacketPairing
  {
    var pairing = PacketPairing()
    // Client packets in one array; the dictionary maps a key to the first and last packet
    // with that key, and `nextSame` chains the rest in order, so the n-th copy on one side
    // meets the n-th copy on the other (FIFO) with one hash operation per packet.
    let estimate = min(
      max(1024, Int((try? MappedFile(path: client))?.bytes.count ?? 0) / 250), max(1024, limit))
    var packets: [SidePacket] = []
    packets.reserveCapacity(estimate)
    var nextSame: [Int] = []
    nextSame.reserveCapacity(estimate)
    var chains = FingerprintChains(minimumCapacity: estimate)
    var roles: Set<HandshakeRole> = []
    (pairing.clientPackets, pairing.clientStart) = try walk(
      client, keyer: keyers?.client, limit: limit, observer: observer
    ) {
      packet, key, role in
      if let role { roles.insert(role) }
      guard let key else { return }
      let index = packets.count
      packets.append(packet)
      nextSame.append(-1)
      if let previous = chains.append(key, index) { nextSame[previous] = index }
    }
    var consumed = [Bool](repeating: false, count: packets.count)
    var found: [PacketPair] = []
    found.reserveCapacity(packets.count)
    var flows: [AddressFlow: FlowEvidence] = [:]
    var unpairedServer: [SidePacket] = []
    (pairing.serverPackets, _) = try walk(
      server, keyer: keyers?.server, limit: limit, side: .server, observer: observer
    ) {
      packet, key, role in
      if let role { roles.insert(role) }
      guard let key else { return }
      // A 64-bit fingerprint collision is checked here: a different packet stays unpaired.
      guard let first = chains.takeFirst(key, next: { nextSame[$0] }),
        packets[first].source == packet.source, packets[first].destination == packet.destination,
        packets[first].kind == packet.kind
      else {
        unpairedServer.append(packet)
        return
      }
      consumed[first] = true
      let client = packets[first]
      flows[
        AddressFlow(source: packet.source.address, destination: packet.destination.address), default: .init()
      ]
      .add(client: client, server: packet)
      if client.timeNanoseconds == packet.timeNanoseconds { pairing.sameTimePairs += 1 }
      found.append(PacketPair(kind: packet.kind, clientToServer: false, client: client, server: packet))
    }
    pairing.hosts = DirectionResolver.resolve(
      flows: flows, roles: roles, given: clientAddresses, reference: pairing.clientStart ?? 0)
    var directed: [PacketPair] = []
    directed.reserveCapacity(found.count)
    for var pair in found {
      if let fromClient = pairing.hosts.fromClient(pair.server.source.address) {
        pair.clientToServer = fromClient
        directed.append(pair)
      } else {
        pairing.undirected.append(pair)
      }
    }
    // In client time order (nearly so already: the server walks in its own order), sorted
    // in place here so the aligner does not copy the pairs to sort them.
    directed.sort { $0.client.timeNanoseconds < $1.client.timeNanoseconds }
    pairing.pairs = directed
    pairing.unpairedServer = unpairedServer
    pairing.unpairedClient = packets.indices.filter { !consumed[$0] }.map { packets[$0] }
    return pairing
  }

  /// Calls `body` for every decodable packet (of the first `limit`) with its pairing key (nil
  /// when it cannot be paired) and the handshake role it shows (SYN, SYN-ACK, CLC Proposal);
  /// returns how many packets it read and the time of the first.
  static func walk(
    _ path: String, keyer: PacketKeyer?, limit: Int = .max, side: Side = .client,
    observer: (any PairingWalkObserver)? = nil, _ body: (SidePacket, UInt64?, HandshakeRole?) -> Void
  ) throws(CaptureFileError) -> (packets: Int, start: Int64?) {
    var keyer = if let keyer { keyer } else { try PacketKeyer.calibrated(path: path) }
    // In time order: data record positions follow the CDC records before them in time.
    let reader = try TimeOrderedPackets(path: path)
    observer?.walkBegins(path: path, side: side, format: reader.reader.format, layout: keyer.layout)
    var read = 0
    var start: Int64?
    while read < limit, let packet = try reader.next() {
      read += 1
      if start == nil { start = packet.timestampNanoseconds }
      let linkType = reader.interfaces[packet.interface].linkType
      observer?.observe(packet, linkType: linkType)
      guard let described = keyer.describe(packet, linkType: linkType) else { continue }
      body(described.packet, described.key, described.role)
    }
    observer?.walkEnds(interfaces: reader.interfaces)
    return (read, start)
  }

}

/// Sees every packet of each side as the in-memory pairing walk reads it (in time order), so
/// other per-packet work — the merge's findings — needs no second read of the files.
public protocol PairingWalkObserver: AnyObject {
  /// A side's walk starts; `layout` is the dump header calibrated on the file's start.
  func walkBegins(path: String, side: Side, format: CaptureFormat, layout: DumpHeaderLayout?)
  func observe(_ packet: CapturedPacket, linkType: LinkType)
  /// The side's file is read; `interfaces` hold the statistics blocks after its last packet.
  func walkEnds(interfaces: [CaptureInterface])
}

/// What pairing needs of one captured packet: its `SidePacket`, its pairing fingerprint
/// (nil when it cannot be paired) and the handshake role its sender shows, if any.
public struct PacketKey: Sendable {
  public var packet: SidePacket
  public var key: UInt64?
  public var role: HandshakeRole?

  static func kindCode(_ kind: PairKind) -> UInt8 {
    switch kind {
    case .tcp, .clc: 0
    case .cdc: 1
    case .data: 2
    }
  }
}

/// Builds the pairing keys of one capture's packets, in file order.
///
/// - TCP segments (and CLC in them): 4-tuple, seq, ack, flags, payload length, IP id.
/// - SMC-R CDC records: addresses and the 44 message bytes; seqno 0 is never paired.
/// - SMC-D CDC records: addresses and the two cursors (a received SMC-D record holds garbage
///   elsewhere).
/// - Data records: addresses and their position in the ring — the producer cursor of the
///   last CDC of that direction (0 after the connection's SYN), the bytes since, the record's
///   length — and its last 256 bytes. A data record with neither a CDC nor the SYN before it
///   in the capture has no known position and is never paired.
///
/// The dump header is calibrated from the start of the file (`calibrated(path:)`); without
/// a layout (no dump records there), CDC records are found from the end of the record and
/// data records are keyed by content.
public struct PacketKeyer: Sendable {
  public let layout: DumpHeaderLayout?
  private var streams: [Stream: Position] = [:]

  struct Stream: Hashable, Sendable {
    var source: Endpoint
    var destination: Endpoint
  }

  struct Position: Sendable {
    var cursor: CDCCursor
    var offset: UInt64
  }

  public init(layout: DumpHeaderLayout?) {
    self.layout = layout?.headerLength == nil ? nil : layout
  }

  /// Calibrates the dump header on the first dump records of `path` (up to 4,096 of them,
  /// within the first `packets` packets).
  public static func calibrated(path: String, packets: Int = 65_536) throws(CaptureFileError) -> PacketKeyer {
    let reader = try CaptureFileReader(path: path)
    var calibrator = DumpHeaderCalibrator()
    var read = 0
    while read < packets, calibrator.records < 4096, let packet = try reader.next() {
      read += 1
      let frame = FrameDecoder.decode(packet.data, linkType: reader.interfaces[packet.interface].linkType)
      if frame.issue == nil, frame.isUDP { calibrator.observe(frame.payload) }
    }
    return PacketKeyer(layout: calibrator.records > 0 ? calibrator.layout() : nil)
  }

  /// Nil when the frame cannot be decoded (it is written to a merge, never paired).
  public mutating func describe(_ captured: CapturedPacket, linkType: LinkType) -> PacketKey? {
    let frame = FrameDecoder.decode(captured.data, linkType: linkType)
    guard frame.issue == nil else { return nil }
    var side = SidePacket(
      frame: captured.frame, interface: captured.interface, timeNanoseconds: captured.timestampNanoseconds,
      source: frame.sourceEndpoint, destination: frame.destinationEndpoint, kind: .tcp,
      recorded: captured.direction)
    var hasher = FNV()
    var syn: HandshakeRole?
    if let tcp = frame.tcp {
      // On the NIC the kernel's packet type is the host's own view (on a dump device it is
      // not: the kernel transmits every record there, so only pcapng flags count for those).
      if side.recorded == .unknown, let type = frame.cookedPacketType {
        side.recorded = type == 4 ? .outbound : type <= 3 ? .inbound : .unknown
      }
      if tcp.flags.contains(.syn) {
        syn = HandshakeRole(address: frame.source, opened: !tcp.flags.contains(.ack))
      } else if CLCMessage.looksLikeCLC(frame.payload), frame.payload.count > 4 {
        // Proposal (1) from the client, Accept (2) from the server.
        let type = frame.payload.u8(4)
        if type == 1 || type == 2 { syn = HandshakeRole(address: frame.source, opened: type == 1) }
      }
      if tcp.flags.contains(.syn) && layout != nil {
        // A new connection: both rings start at cursor 0.
        let start = Position(cursor: CDCCursor(wrap: 0, count: 0), offset: 0)
        streams[Stream(source: side.source, destination: side.destination)] = start
        streams[Stream(source: side.destination, destination: side.source)] = start
      }
      side.kind = CLCMessage.looksLikeCLC(frame.payload) ? .clc : .tcp
      hasher.add(UInt64(tcp.sequence))
      hasher.add(UInt64(tcp.acknowledgment))
      hasher.add(UInt64(tcp.flags.rawValue))
      hasher.add(UInt64(frame.wirePayloadLength))
      if frame.ipID != 0 { hasher.add(UInt64(frame.ipID)) }
    } else if let roce = RoCEv2Packet(frame), let message = roce.cdcBytes {
      // A CDC in RoCEv2 (an RDMA NIC's capture): the same bytes on both hosts, told apart by
      // the link's queue pair and the packet sequence number too.
      side.kind = .cdc
      hasher.add(UInt64(roce.bth.destinationQP) << 32 | UInt64(roce.bth.packetSequenceNumber))
      hasher.add(message)
    } else if frame.isUDP, DumpHeaderCalibrator.isDumpRecord(frame.payload) {
      let paired: Bool
      if let layout, let headerLength = layout.headerLength {
        paired = keyByLayout(
          layout, headerLength: headerLength, frame.payload, wireLength: frame.wirePayloadLength, &side,
          &hasher)
      } else {
        paired = Self.keyByShape(frame.payload, &side, &hasher)
      }
      guard paired else { return PacketKey(packet: side, key: nil, role: syn) }
    } else {
      return PacketKey(packet: side, key: nil, role: syn)
    }
    let key = PairFingerprint.of(
      side.source, side.destination, kind: PacketKey.kindCode(side.kind), content: hasher.value)
    return PacketKey(packet: side, key: key, role: syn)
  }

  /// With a calibrated layout: CDC records by message (SMC-R) or cursors (SMC-D), data
  /// records by position. False when the record cannot be paired.
  private mutating func keyByLayout(
    _ layout: DumpHeaderLayout, headerLength: Int, _ payload: UnsafeRawBufferPointer, wireLength: Int,
    _ side: inout SidePacket, _ hasher: inout FNV
  ) -> Bool {
    let stream = Stream(source: side.source, destination: side.destination)
    switch layout.classify(payload, wireLength: wireLength, connectionMode: nil) {
    case .cdc(let message):
      side.kind = .cdc
      streams[stream] = Position(cursor: message.producer, offset: 0)
      if message.mode == .smcR {
        // RWWI records carry a synthesised seqno 0: never paired by it.
        guard message.sequenceNumber != 0 else { return false }
        hasher.add(payload.slice(headerLength, CDCMessage.smcRLength))
      } else {
        for cursor in [message.producer, message.consumer] {
          hasher.add(UInt64(cursor.wrap) << 32 | UInt64(cursor.count))
        }
      }
      return true
    case .data(let length):
      side.kind = .data
      guard var position = streams[stream] else { return false }
      hasher.add(UInt64(position.cursor.wrap) << 32 | UInt64(position.cursor.count))
      hasher.add(position.offset)
      hasher.add(UInt64(length))
      // The content too: a position read one CDC apart on the two hosts must not pair.
      let body = payload.count - headerLength
      hasher.add(payload.slice(payload.count - min(256, body), min(256, body)))
      position.offset += UInt64(length)
      streams[stream] = position
      return true
    case .shortCDC, .unknownHeader:
      return false
    }
  }

  /// Without a layout: an SMC-R CDC record is found from the end (48 bytes starting FE 2C);
  /// anything else is keyed by its length and last 256 bytes.
  private static func keyByShape(
    _ p: UnsafeRawBufferPointer, _ side: inout SidePacket, _ hasher: inout FNV
  ) -> Bool {
    if p.count >= 56, p.u8(p.count - 48) == 0xFE, p.u8(p.count - 47) == 0x2C {
      let message = p.slice(p.count - 48, 44)
      guard message.u16be(2) != 0 else { return false }
      side.kind = .cdc
      hasher.add(message)
    } else {
      side.kind = .data
      hasher.add(UInt64(p.count))
      hasher.add(p.slice(max(0, p.count - 256), min(256, p.count)))
    }
    return true
  }
}

/// FNV-1a style hashing a 64-bit word at a time (the fingerprint's mixer finishes it).
struct FNV {
  var value: UInt64 = 0xCBF2_9CE4_8422_2325

  mutating func add(_ v: UInt64) {
    value = (value ^ v) &* 0x100_0000_01B3
    value ^= value >> 32
  }

  mutating func add(_ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    while offset + 8 <= bytes.count {
      add(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
      offset += 8
    }
    var tail: UInt64 = UInt64(bytes.count) << 56
    var shift: UInt64 = 0
    while offset < bytes.count {
      tail |= UInt64(bytes[offset]) << shift
      shift += 8
      offset += 1
    }
    add(tail)
  }
}
