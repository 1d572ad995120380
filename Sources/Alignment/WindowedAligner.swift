import CaptureFiles
import Foundation
import SMCWire

/// The lower convex hull of points added in any order. The minimum of `y − k·x` over every
/// point added is reached at one of its vertices, so a clock fit over the vertices equals a
/// fit over all the points, while the hull stays small (a few dozen vertices for jittered
/// delays).
///
/// Points are pairs: x is the client time, y the server − client difference, multiplied by
/// `sign` (+1: lower hull of client→server pairs; −1: upper hull of server→client pairs).
struct OnlineHull {
  let sign: Double
  private var origin: Int64?
  private var xs: [Double] = []
  private var ys: [Double] = []
  private(set) var vertices: [PairedTimes] = []

  init(sign: Double) { self.sign = sign }

  mutating func add(_ times: PairedTimes) {
    // The first pair's client time is the origin of x.
    let origin = self.origin ?? times.clientNanoseconds
    self.origin = origin
    let x = Double(times.clientNanoseconds &- origin)
    let y = sign * Double(times.serverNanoseconds &- times.clientNanoseconds)
    var low = 0
    var high = xs.count
    while low < high {
      let mid = (low + high) / 2
      if xs[mid] <= x { low = mid + 1 } else { high = mid }
    }
    var i = low
    if i > 0 && xs[i - 1] == x {
      if ys[i - 1] <= y { return }
      remove(i - 1)
      i -= 1
    }
    // On or above the chord between its neighbours: not a vertex.
    if i > 0 && i < xs.count && cross(xs[i - 1], ys[i - 1], xs[i], ys[i], x, y) >= 0 { return }
    xs.insert(x, at: i)
    ys.insert(y, at: i)
    vertices.insert(times, at: i)
    while i >= 2 && cross(xs[i - 2], ys[i - 2], xs[i - 1], ys[i - 1], xs[i], ys[i]) <= 0 {
      remove(i - 1)
      i -= 1
    }
    while i + 2 < xs.count && cross(xs[i], ys[i], xs[i + 1], ys[i + 1], xs[i + 2], ys[i + 2]) <= 0 {
      remove(i + 1)
    }
  }

  private mutating func remove(_ i: Int) {
    xs.remove(at: i)
    ys.remove(at: i)
    vertices.remove(at: i)
  }

  private func cross(_ ox: Double, _ oy: Double, _ ax: Double, _ ay: Double, _ bx: Double, _ by: Double)
    -> Double
  {
    (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)
  }
}

/// Aligns two captures in memory bounded by a pairing window (the first pass of a streamed
/// `smcpair merge --formats pcapng`).
///
/// 1. A coarse offset from the first packets of both files (`PacketPairing` over a prefix).
/// 2. One `PairingWalk` over both files with that offset; every pair goes into one of two
///    `OnlineHull`s instead of a list.
/// 3. The clock fit over the hull vertices — the same fit `Aligner` makes over all pairs.
///
/// When the walk cannot be trusted to have made the same pairs as the in-memory pairing, the
/// outcome says why and the caller aligns in memory instead: no pairs in the prefix, a clock
/// step (the pairs admit no single model: segments need every pair), or a partner that came
/// later than the window.
public enum WindowedAligner {
  public static let defaultWindowNanoseconds: Int64 = 2_000_000_000
  /// The longest prefix tried for the coarse clock model (a short one first, then this).
  static let longestPrefix = 262_144
  static let prefixLimits = [16_384, longestPrefix]

  public enum Outcome: Sendable {
    /// `logs` hold every packet's note, per side.
    case aligned(Alignment, logs: PairLogs)
    case needsMemory(reason: String)
  }

  /// `logFolder` receives the two note files (`PairLogs`) and, with `keepPairs`, a file of
  /// every pair's times (`PairLogs.pairs`); the caller removes them. `observers` see every
  /// packet of their side. The unpaired packets kept in the alignment are the CDC ones
  /// (what findings need), not every one.
  public static func align(
    client: String, server: String, clientAddresses: Set<IPAddress> = [],
    window: Int64 = defaultWindowNanoseconds, logFolder: String, keepPairs: Bool = false,
    observers: PerSide<(any PairingWalkObserver)?> = PerSide(repeating: nil)
  ) throws(CaptureFileError) -> Outcome {
    let keyers = PerSide(
      client: try PacketKeyer.calibrated(path: client), server: try PacketKeyer.calibrated(path: server))
    var coarse: ClockModel?
    for limit in prefixLimits {
      let prefix = try PacketPairing.pair(
        client: client, server: server, clientAddresses: clientAddresses, limit: limit, keyers: keyers)
      guard !prefix.pairs.isEmpty else { continue }
      let fitted = Aligner.align(
        pairs: prefix.pairs, clientPackets: prefix.clientPackets, serverPackets: prefix.serverPackets,
        hosts: prefix.hosts)
      guard fitted.segments.count == 1 else {
        return .needsMemory(reason: "the clock steps within the first packets")
      }
      // Skew 0: a prefix is too short to measure skew; the window absorbs the drift.
      coarse = ClockModel(
        offsetNanoseconds: fitted.model.offsetNanoseconds, offsetLower: fitted.model.offsetLower,
        offsetUpper: fitted.model.offsetUpper, skewPPM: 0, skewLower: 0, skewUpper: 0,
        referenceNanoseconds: fitted.model.referenceNanoseconds)
      break
    }
    guard let coarse else {
      return .needsMemory(
        reason: "the first \(longestPrefix) packets of the two captures have none in common")
    }
    var walk = try PairingWalk(
      client: client, server: server, coarse: coarse, window: window, keyers: keyers, observers: observers)
    let paths = PerSide.each { side in "\(logFolder)/.smcpair-pairing-\(getpid())-\(side.rawValue)" }
    var sink = FitSink(logs: try paths.map { path throws(CaptureFileError) in try PairLogWriter(path: path) })
    if keepPairs {
      sink.pairTimes = try PairTimesWriter(path: "\(logFolder)/.smcpair-pairing-\(getpid())-pairs")
    }
    do throws(CaptureFileError) {
      while try walk.advance(&sink) {}
      if let failure = sink.failure { throw failure }
      for side in Side.allCases { try sink.logs[side].close() }
      try sink.pairTimes?.close()
    } catch {
      PairLogs(paths: paths, sources: [], pairs: sink.pairTimes?.times).remove()
      throw error
    }
    let logs = PairLogs(paths: paths, sources: sink.sources, pairs: sink.pairTimes?.times)
    let outcome = fit(sink, walk: walk, window: window, given: clientAddresses, logs: logs)
    if case .needsMemory = outcome { logs.remove() }
    return outcome
  }

  private static func fit(
    _ sink: FitSink, walk: PairingWalk, window: Int64, given clientAddresses: Set<IPAddress>, logs: PairLogs
  ) -> Outcome {
    let late = Double(walk.latePartners)
    let chance = walk.expectedFalseLate
    if late > chance + 4 * chance.squareRoot() {
      return .needsMemory(
        reason:
          "\(walk.latePartners) packet(s) met their copy on the other side more than the pairing window (\(Double(window) / 1e9) s) later"
      )
    }
    // Something paired means the client capture had a first packet: the model's reference.
    guard sink.pairs > 0, let start = sink.clientStart else {
      return .needsMemory(reason: "no packet paired within the window")
    }
    let hosts = DirectionResolver.resolve(
      flows: sink.flows, roles: sink.roles, given: clientAddresses, reference: start)
    guard hosts.undecidedPairs == 0 else {
      return .needsMemory(reason: "the direction of some pairs cannot be told")
    }
    let fit = ClockFitter.fit(sink.vertices(hosts), reference: start)
    guard fit.feasible else { return .needsMemory(reason: "the clock steps inside the captures") }
    var byKind: [PairKind: Int] = [:]
    for (index, kind) in PairKind.allCases.enumerated() where sink.kinds[index] > 0 {
      byKind[kind] = sink.kinds[index]
    }
    var warnings: [String] = []
    if fit.verdict == .oneSided {
      warnings.append("packets were paired in one direction only: the offset is bounded on one side")
    }
    var alignment = Alignment(
      verdict: fit.verdict, model: fit.model,
      segments: [
        ClockSegment(
          startClientNanoseconds: .min, endClientNanoseconds: .max, pairs: sink.pairs, model: fit.model)
      ],
      pairsByKind: byKind, pairs: [], clientPackets: sink.packets.client, serverPackets: sink.packets.server,
      causalityViolations: 0, hosts: hosts, warnings: warnings + hosts.warnings)
    alignment.sameTimePairs = sink.sameTimePairs
    alignment.unpairedClient = sink.unpairedCDC.client
    alignment.unpairedServer = sink.unpairedCDC.server
    alignment.window = PairingWindowUse(
      windowNanoseconds: window, mostWaiting: walk.mostPending, unpairedClient: sink.unpaired.client,
      unpairedServer: sink.unpaired.server)
    return .aligned(alignment, logs: logs)
  }
}

/// How a windowed alignment went: the window, the most packets waiting at once, and the
/// pairable packets each side had without a partner.
public struct PairingWindowUse: Sendable {
  public var windowNanoseconds: Int64
  public var mostWaiting: Int
  public var unpairedClient: Int
  public var unpairedServer: Int
}

/// The pairs sent from one address, as two hulls: the lower one counts if the address turns
/// out to be the client's (client→server pairs), the upper one otherwise. A few dozen
/// vertices each.
struct DirectedHulls {
  var asClient = OnlineHull(sign: 1)
  var asServer = OnlineHull(sign: -1)

  mutating func add(_ times: PairedTimes) {
    asClient.add(times)
    asServer.add(times)
  }
}

/// Collects what the clock fit needs from a walk (hulls per flow, counts, handshake roles)
/// and logs each frame's note, per side in frame order.
struct FitSink: PairingWalkSink {
  var roles: Set<HandshakeRole> = []
  /// Per flow, the hulls of its pairs both ways and the recorded directions: which way
  /// counts is decided only at the end (`DirectionResolver`; a SYN may come late).
  var flows: [AddressFlow: FlowEvidence] = [:]
  var sameTimePairs = 0
  var kinds = [Int](repeating: 0, count: PairKind.allCases.count)
  var packets = PerSide(repeating: 0)
  var unpaired = PerSide(repeating: 0)
  var pairs = 0
  /// Time of the client capture's first packet (the model's reference).
  var clientStart: Int64?
  var sources: [IPAddress] = []
  private var sourceIDs: [IPAddress: UInt16] = [:]
  private var lastSource: (IPAddress, UInt16)?
  var settling = PerSide(repeating: SettlingNotes())
  let logs: PerSide<PairLogWriter>
  /// Every pair's times, when kept.
  var pairTimes: PairTimesWriter?
  /// CDC records only one side has (findings name each).
  var unpairedCDC = PerSide<[SidePacket]>(repeating: [])
  /// The first failure writing a log, or too many source addresses.
  var failure: CaptureFileError?

  init(logs: PerSide<PairLogWriter>) {
    self.logs = logs
  }

  private mutating func sourceID(_ address: IPAddress) -> UInt16 {
    if let lastSource, lastSource.0 == address { return lastSource.1 }
    let id: UInt16
    if let known = sourceIDs[address] {
      id = known
    } else if sources.count < Int(LoggedNote.noSource) {
      id = UInt16(sources.count)
      sources.append(address)
      sourceIDs[address] = id
    } else {
      id = LoggedNote.noSource
      failure =
        failure ?? CaptureFileError(.unsupported, "more than 65,535 source addresses", path: logs.client.path)
    }
    lastSource = (address, id)
    return id
  }

  private mutating func flush(_ side: Side) {
    while let note = settling[side].popSettled() {
      do throws(CaptureFileError) {
        try logs[side].append(note)
      } catch {
        failure = failure ?? error
      }
    }
  }

  mutating func read(side: Side, packet: CapturedPacket, described: PacketKey?) {
    packets[side] += 1
    if side == .client && clientStart == nil { clientStart = packet.timestampNanoseconds }
    var note = LoggedNote()
    if let described {
      if let role = described.role { roles.insert(role) }
      note.sourceID = sourceID(described.packet.source.address)
      note.kind = UInt8(described.packet.kind.index)
    }
    settling[side].append(frame: packet.frame, note: note, waiting: described?.key != nil)
    flush(side)
  }

  mutating func paired(number: Int, client: SidePacket, server: SidePacket) {
    kinds[server.kind.index] += 1
    pairs += 1
    flows[
      AddressFlow(source: server.source.address, destination: server.destination.address), default: .init()
    ]
    .add(client: client, server: server)
    if client.timeNanoseconds == server.timeNanoseconds { sameTimePairs += 1 }
    if let pairTimes {
      do throws(CaptureFileError) {
        try pairTimes.append(client: client, server: server)
      } catch {
        failure = failure ?? error
      }
    }
    settling.client.settle(frame: client.frame, pairNumber: number, partnerTime: server.timeNanoseconds)
    settling.server.settle(frame: server.frame, pairNumber: number, partnerTime: client.timeNanoseconds)
    flush(.client)
    flush(.server)
  }

  /// The hull vertices of every pair, directed by the decided hosts.
  func vertices(_ hosts: HostAddresses) -> [PairedTimes] {
    flows.flatMap { flow, evidence in
      hosts.fromClient(flow.source).map { evidence.times(fromClient: $0) } ?? []
    }
  }

  mutating func unpaired(side: Side, packet: SidePacket) {
    unpaired[side] += 1
    if packet.kind == .cdc { unpairedCDC[side].append(packet) }
    settling[side].settle(frame: packet.frame, pairNumber: 0, partnerTime: 0)
    flush(side)
  }
}
