import CaptureFiles
import SMCWire

/// A stretch of the capture with one clock model (a clock step starts a new one).
public struct ClockSegment: Sendable {
  public var startClientNanoseconds: Int64
  public var endClientNanoseconds: Int64
  public var pairs: Int
  public var model: ClockModel
}

/// The result of aligning two captures.
public struct Alignment: Sendable {
  public var verdict: AlignmentVerdict
  /// The model of the first segment (the one reported as offset/skew).
  public var model: ClockModel
  public var segments: [ClockSegment]
  public var pairsByKind: [PairKind: Int]
  public var pairs: [PacketPair]
  public var clientPackets: Int
  public var serverPackets: Int
  /// Receives that land before their send once aligned (must be 0).
  public var causalityViolations: Int
  /// Which traffic addresses are on which capture's host, and the evidence.
  public var hosts: HostAddresses
  public var warnings: [String]
  /// Pairs whose direction could not be told (left out of the clock model).
  public var undirectedPairs = 0
  /// Pairs whose two copies have the same timestamp (all of them: one capture twice).
  public var sameTimePairs = 0
  /// Pairable packets only one side captured (after a windowed walk: the CDC ones only).
  public var unpairedClient: [SidePacket] = []
  public var unpairedServer: [SidePacket] = []
  /// Set when the pairs were made by a windowed walk (and `pairs` is empty).
  public var window: PairingWindowUse?

  /// Number of pairs with a direction (also when `pairs` was not kept).
  public var pairCount: Int { pairsByKind.values.reduce(0, +) }
  /// Whether the clocks were aligned at all: false when the captures share no packet, or
  /// no shared packet's direction can be told.
  public var aligned: Bool {
    switch verdict {
    case .bounded, .oneSided, .probe: true
    case .cannotTell, .none: false
    }
  }

  /// Addresses on the client capture's host.
  public var clientAddresses: Set<IPAddress> { hosts.client }

  /// The segment whose time range holds `client` (the nearest one otherwise).
  public func segment(atClient client: Int64) -> ClockSegment {
    segments.first { client <= $0.endClientNanoseconds } ?? segments[segments.count - 1]
  }

  /// Server clock time of a client time.
  public func serverTime(atClient client: Int64) -> Int64 {
    segment(atClient: client).model.serverTime(atClient: client)
  }

  /// Client clock time of a server time (via the segment of its approximate client time).
  public func clientTime(atServer server: Int64) -> Int64 {
    let guess = segments[0].model.clientTime(atServer: server)
    return segment(atClient: guess).model.clientTime(atServer: server)
  }

  /// One-way delay of a pair on the client clock (receive − send).
  public func oneWayDelay(clientToServer: Bool, client: Int64, server: Int64) -> Int64 {
    let serverOnClient = clientTime(atServer: server)
    return clientToServer ? serverOnClient &- client : client &- serverOnClient
  }

  /// Whether the receive of a pair lands before its send once aligned (beyond ±1 ns rounding).
  public func violatesCausality(clientToServer: Bool, client: Int64, server: Int64) -> Bool {
    let mapped = serverTime(atClient: client)
    return clientToServer ? server < mapped &- 1 : server > mapped &+ 1
  }
}

/// A coarse clock comparison made by asking both agents for their clocks over SSH:
/// server − client = `offsetNanoseconds` ± `halfWidthNanoseconds` (half the round trips).
public struct ClockProbe: Sendable, Equatable {
  public var offsetNanoseconds: Double
  public var halfWidthNanoseconds: Double

  public init(offsetNanoseconds: Double, halfWidthNanoseconds: Double) {
    self.offsetNanoseconds = offsetNanoseconds
    self.halfWidthNanoseconds = halfWidthNanoseconds
  }
}

extension Alignment {
  /// Records the pairs left without a direction (the verdict says so when no pair has one)
  /// and the pairs whose copies carry the same time.
  mutating func note(undirected: Int, sameTime: Int) {
    undirectedPairs = undirected
    sameTimePairs = sameTime
    for decision in hosts.decisions where decision.evidence == nil {
      warnings.append("\(decision.pairs) pair(s) left out of the clock model: \(decision.explanation)")
    }
    if undirected > 0 && pairCount == 0 { verdict = .cannotTell }
  }

  /// Falls back on the agents' clock probe (only sensible when nothing was paired).
  mutating func use(_ probe: ClockProbe) {
    let model = ClockModel(
      offsetNanoseconds: probe.offsetNanoseconds,
      offsetLower: probe.offsetNanoseconds - probe.halfWidthNanoseconds,
      offsetUpper: probe.offsetNanoseconds + probe.halfWidthNanoseconds, skewPPM: 0,
      skewLower: -ClockFitter.maximumSkewPPM, skewUpper: ClockFitter.maximumSkewPPM,
      referenceNanoseconds: self.model.referenceNanoseconds)
    self.model = model
    segments = segments.map {
      ClockSegment(
        startClientNanoseconds: $0.startClientNanoseconds, endClientNanoseconds: $0.endClientNanoseconds,
        pairs: $0.pairs, model: model)
    }
    verdict = .probe
    warnings = [
      "no packet was seen on both sides: the offset comes from the agents' clock probe over SSH (±\(Int((probe.halfWidthNanoseconds / 1000).rounded())) us), far coarser than packet pairs"
    ]
  }
}

/// Pairs two captures and fits the clock model, in segments when a clock step makes one
/// model infeasible.
public enum Aligner {
  /// `probe`, when given, is used only when no packet was seen on both sides; `observer`
  /// sees every packet the pairing reads.
  public static func align(
    client: String, server: String, clientAddresses: Set<IPAddress> = [], probe: ClockProbe? = nil,
    observer: (any PairingWalkObserver)? = nil
  )
    throws(CaptureFileError)
    -> Alignment
  {
    let pairing = try PacketPairing.pair(
      client: client, server: server, clientAddresses: clientAddresses, observer: observer)
    var alignment = align(
      pairs: pairing.pairs, clientPackets: pairing.clientPackets, serverPackets: pairing.serverPackets,
      hosts: pairing.hosts, reference: pairing.clientStart)
    alignment.unpairedClient = pairing.unpairedClient
    alignment.unpairedServer = pairing.unpairedServer
    alignment.note(undirected: pairing.undirected.count, sameTime: pairing.sameTimePairs)
    if alignment.verdict == .none, pairing.undirected.isEmpty, let probe { alignment.use(probe) }
    return alignment
  }

  /// With client addresses known beforehand (tests, simulations).
  public static func align(
    pairs: [PacketPair], clientPackets: Int, serverPackets: Int, clientAddresses: Set<IPAddress>,
    reference: Int64? = nil
  ) -> Alignment {
    align(
      pairs: pairs, clientPackets: clientPackets, serverPackets: serverPackets,
      hosts: HostAddresses(client: clientAddresses), reference: reference)
  }

  /// `reference` is the client time the offset and its bounds refer to: the start of the
  /// client capture (the first pair's time when not given).
  public static func align(
    pairs: [PacketPair], clientPackets: Int, serverPackets: Int, hosts: HostAddresses,
    reference: Int64? = nil
  ) -> Alignment {
    var warnings: [String] = []
    let inOrder = zip(pairs, pairs.dropFirst()).allSatisfy {
      $0.client.timeNanoseconds <= $1.client.timeNanoseconds
    }
    let sorted = inOrder ? pairs : pairs.sorted { $0.client.timeNanoseconds < $1.client.timeNanoseconds }
    var byKind: [PairKind: Int] = [:]
    for pair in sorted { byKind[pair.kind, default: 0] += 1 }
    let reference = reference ?? sorted.first?.client.timeNanoseconds ?? 0
    var segments: [ClockSegment] = []
    var verdict = AlignmentVerdict.none
    if sorted.isEmpty {
      warnings.append("no packet was seen on both sides: the clocks are not aligned (offset 0)")
      segments = [
        ClockSegment(
          startClientNanoseconds: .min, endClientNanoseconds: .max, pairs: 0,
          model: ClockFitter.fit([], reference: reference).model)
      ]
    } else {
      var start = 0
      while start < sorted.count {
        // The longest feasible run from `start` (binary search on its end).
        // The fit of the run ending at `good`, once made (so the longest run is fitted once).
        var good = start + 1
        var bad = sorted.count + 1
        var goodFit: ClockFitter.Fit?
        let whole = ClockFitter.fit(sorted[start..<sorted.count].map(\.times), reference: reference)
        if whole.feasible {
          good = sorted.count
          goodFit = whole
        } else {
          while bad - good > 1 {
            let mid = (good + bad) / 2
            let trial = ClockFitter.fit(sorted[start..<mid].map(\.times), reference: reference)
            if trial.feasible {
              good = mid
              goodFit = trial
            } else {
              bad = mid
            }
          }
        }
        let fit = goodFit ?? ClockFitter.fit(sorted[start..<good].map(\.times), reference: reference)
        segments.append(
          ClockSegment(
            startClientNanoseconds: start == 0 ? .min : sorted[start].client.timeNanoseconds,
            endClientNanoseconds: good == sorted.count ? .max : sorted[good - 1].client.timeNanoseconds,
            pairs: good - start, model: fit.model))
        if verdict == .none || fit.verdict == .oneSided { verdict = fit.verdict }
        start = good
      }
      if segments.count > 1 {
        warnings.append(
          "the clocks are not consistent with one model: \(segments.count - 1) clock step(s); each segment is aligned on its own"
        )
      }
      if verdict == .oneSided {
        warnings.append("packets were paired in one direction only: the offset is bounded on one side")
      }
    }
    var alignment = Alignment(
      verdict: verdict, model: segments[0].model, segments: segments, pairsByKind: byKind, pairs: sorted,
      clientPackets: clientPackets, serverPackets: serverPackets, causalityViolations: 0,
      hosts: hosts, warnings: warnings + hosts.warnings)
    alignment.causalityViolations =
      sorted.filter { pair in
        alignment.violatesCausality(
          clientToServer: pair.clientToServer, client: pair.client.timeNanoseconds,
          server: pair.server.timeNanoseconds)
      }.count
    return alignment
  }
}
