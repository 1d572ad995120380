import CaptureFiles
import SMCWire

/// What a `PairingWalk` tells as it reads: every packet, every pair it makes and every
/// pairable packet it gives up on (its partner did not come within the window).
public protocol PairingWalkSink {
  /// A packet was read from `side`; `described` is nil when its frame cannot be decoded, its
  /// `key` nil when it cannot be paired.
  mutating func read(side: Side, packet: CapturedPacket, described: PacketKey?)
  /// The `number`-th pair (1-based, in the order the walk makes them).
  mutating func paired(number: Int, client: SidePacket, server: SidePacket)
  /// A pairable packet that stays unpaired.
  mutating func unpaired(side: Side, packet: SidePacket)
}

/// Pairs two captures while reading them together, in one time order, keeping only the
/// packets still waiting for their partner: memory follows the pairing window, not the files.
///
/// Both files are read in their own order and merged by time on the client clock, the
/// server's mapped through a coarse clock model. A pairable packet waits in a FIFO per
/// fingerprint; a packet from the other side with the same fingerprint takes the oldest one
/// (so the n-th copy pairs with the n-th copy, as `PacketPairing` does). A packet still
/// waiting `window` after its own time is given up on. Every decision depends only on the
/// files, the coarse model and the window, so two walks over the same inputs make the same
/// pairs with the same numbers.
///
/// A partner that arrives after its packet was given up on is counted in `latePartners`
/// (found with a fixed-size Bloom filter of given-up fingerprints; `expectedFalseLate` is
/// how many of those counts chance alone explains).
public struct PairingWalk {
  public let window: Int64
  public private(set) var pairsMade = 0
  public private(set) var latePartners = 0
  public private(set) var expectedFalseLate = 0.0
  /// Most packets waiting at once (both sides).
  public private(set) var mostPending = 0

  private var feeds: PerSide<SideFeed>
  private var next = PerSide<SideFeed.Item?>(repeating: nil)
  private var nextMapped = PerSide<Int64>(repeating: .max)
  private var now = Int64.min
  private var queues = PerSide(repeating: PendingQueue())
  private var tables = PerSide(repeating: FingerprintChains())
  private var givenUp = PerSide(repeating: GivenUpKeys())
  private var finished = false

  /// `coarse` maps server times onto the client clock; `window` is in nanoseconds; `keyers`
  /// key each side's packets; `observers` see every packet of their side (on its reading
  /// thread).
  public init(
    client: String, server: String, coarse: ClockModel, window: Int64, keyers: PerSide<PacketKeyer>,
    observers: PerSide<(any PairingWalkObserver)?> = PerSide(repeating: nil)
  ) throws(CaptureFileError) {
    self.window = window
    let paths = PerSide(client: client, server: server)
    feeds = try PerSide.each { side throws(CaptureFileError) in
      try SideFeed(
        path: paths[side], side: side, coarse: coarse, keyer: keyers[side], observer: observers[side])
    }
    for side in Side.allCases { try load(side) }
  }

  /// Makes the next packet of `side` current (nil at its end).
  private mutating func load(_ side: Side) throws(CaptureFileError) {
    next[side] = try feeds[side].next()
    nextMapped[side] = next[side]?.mapped ?? .max
  }

  /// The side whose current packet comes first on the client clock (the client's on a tie)
  /// and that packet; nil at the end of both files.
  private func earliest() -> (side: Side, item: SideFeed.Item)? {
    switch (next.client, next.server) {
    case (nil, nil): nil
    case (let client?, nil): (.client, client)
    case (nil, let server?): (.server, server)
    case (let client?, let server?):
      nextMapped.client <= nextMapped.server ? (.client, client) : (.server, server)
    }
  }

  /// Reads one packet and tells `sink` what follows from it. At the end of both files, gives
  /// up on every packet still waiting and returns false.
  public mutating func advance(_ sink: inout some PairingWalkSink) throws(CaptureFileError) -> Bool {
    guard let (side, item) = earliest() else {
      if !finished {
        finished = true
        for side in Side.allCases { giveUp(side, before: .max, &sink) }
      }
      return false
    }
    let mapped = item.mapped
    try load(side)
    now = max(now, mapped)
    let described = item.described
    sink.read(side: side, packet: item.packet, described: described)
    if let described, let key = described.key {
      match(side, described.packet, key: key, mapped: mapped, &sink)
    }
    let limit = now > Int64.min + window ? now - window : Int64.min
    giveUp(.client, before: limit, &sink)
    giveUp(.server, before: limit, &sink)
    return true
  }

  private mutating func match(
    _ side: Side, _ packet: SidePacket, key: UInt64, mapped: Int64, _ sink: inout some PairingWalkSink
  ) {
    let other = side.other
    if let seq = takeFirst(other, key) {
      queues[other].settle(seq)
      let partner = queues[other][seq].packet
      // A 64-bit fingerprint collision is checked here: both packets stay unpaired.
      guard partner.source == packet.source, partner.destination == packet.destination,
        partner.kind == packet.kind
      else {
        sink.unpaired(side: other, packet: partner)
        sink.unpaired(side: side, packet: packet)
        return
      }
      pairsMade += 1
      if side == .client {
        sink.paired(number: pairsMade, client: packet, server: partner)
      } else {
        sink.paired(number: pairsMade, client: partner, server: packet)
      }
      return
    }
    if givenUp[other].mayContain(key) {
      latePartners += 1
      expectedFalseLate += givenUp[other].falsePositiveRate
    }
    let seq = queues[side].append(PendingPacket(key: key, packet: packet, mappedTime: mapped))
    if let previous = tables[side].append(key, seq) { queues[side][previous].next = seq }
    mostPending = max(mostPending, queues.client.waiting + queues.server.waiting)
  }

  /// Gives up on the packets of `side` waiting since before `limit` (oldest first).
  /// Removes and returns the oldest waiting packet of `side` with fingerprint `key`.
  private mutating func takeFirst(_ side: Side, _ key: UInt64) -> Int? {
    guard let slot = tables[side].slot(of: key) else { return nil }
    let first = tables[side].first(at: slot)
    tables[side].replaceFirst(at: slot, with: queues[side][first].next)
    return first
  }

  private mutating func giveUp(_ side: Side, before limit: Int64, _ sink: inout some PairingWalkSink) {
    while let front = queues[side].front {
      if front.settled {
        queues[side].popFront()
        continue
      }
      guard front.mappedTime < limit else { return }
      // The oldest waiting packet is the first of its fingerprint's FIFO.
      _ = takeFirst(side, front.key)
      givenUp[side].insert(front.key)
      sink.unpaired(side: side, packet: front.packet)
      queues[side].popFront()
    }
  }
}

/// A packet waiting for its partner.
struct PendingPacket {
  var key: UInt64
  var packet: SidePacket
  var mappedTime: Int64
  /// Sequence number of the next waiting packet with the same key (-1: none).
  var next = -1
  /// Paired (or found to collide): no longer waiting.
  var settled = false
}

/// Waiting packets of one side in arrival order, addressed by a sequence number.
struct PendingQueue {
  private var entries: [PendingPacket] = []
  private var head = 0
  /// Sequence number of `entries[0]`.
  private var base = 0
  private(set) var waiting = 0

  subscript(seq: Int) -> PendingPacket {
    get { entries[seq - base] }
    set { entries[seq - base] = newValue }
  }

  var front: PendingPacket? { head < entries.count ? entries[head] : nil }

  mutating func append(_ packet: PendingPacket) -> Int {
    entries.append(packet)
    waiting += 1
    return base + entries.count - 1
  }

  mutating func settle(_ seq: Int) {
    entries[seq - base].settled = true
    waiting -= 1
  }

  mutating func popFront() {
    if !entries[head].settled { waiting -= 1 }
    head += 1
    if head >= 4096 && head * 2 >= entries.count {
      entries.removeFirst(head)
      base += head
      head = 0
    }
  }
}

/// A Bloom filter (2²³ bits, two probes) of fingerprints given up on, allocated on first use.
struct GivenUpKeys {
  private static let bits = 1 << 23
  private var words: [UInt64] = []
  private var set = 0

  var falsePositiveRate: Double {
    let fill = Double(set) / Double(Self.bits)
    return fill * fill
  }

  private static func probes(_ key: UInt64) -> (Int, Int) {
    let other = PairFingerprint.mix(key ^ 0x9E37_79B9_7F4A_7C15)
    return (Int(truncatingIfNeeded: key) & (bits - 1), Int(truncatingIfNeeded: other) & (bits - 1))
  }

  mutating func insert(_ key: UInt64) {
    if words.isEmpty { words = [UInt64](repeating: 0, count: Self.bits / 64) }
    let (a, b) = Self.probes(key)
    for bit in [a, b] where words[bit >> 6] & (1 << UInt64(bit & 63)) == 0 {
      words[bit >> 6] |= 1 << UInt64(bit & 63)
      set += 1
    }
  }

  func mayContain(_ key: UInt64) -> Bool {
    guard !words.isEmpty else { return false }
    let (a, b) = Self.probes(key)
    return words[a >> 6] & (1 << UInt64(a & 63)) != 0 && words[b >> 6] & (1 << UInt64(b & 63)) != 0
  }
}
