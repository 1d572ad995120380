import Alignment
import CaptureFiles
import SMCWire

/// One pair's one-way delay, as the outlier test reads it.
struct DelayedPair {
  var kind: PairKind
  var clientToServer: Bool
  var delay: Int64
  var clientTime: Int64
  var clientFrame: Int
  var source: Endpoint
  var destination: Endpoint

  /// Kind and direction as one number (0 ..< 8): the outlier test's groups.
  var group: Int { kind.index * 2 + (clientToServer ? 0 : 1) }
}

/// Every directed pair's delay, read in passes: from an in-memory alignment's pairs or from a
/// windowed walk's pair file, so memory does not follow the number of pairs.
protocol PairDelays {
  associatedtype Failure: Error
  func forEach(_ body: (DelayedPair) -> Void) throws(Failure)
}

/// The pairs of an alignment made in memory.
struct ListedPairDelays: PairDelays {
  let alignment: Alignment

  func forEach(_ body: (DelayedPair) -> Void) {
    let a = alignment
    for pair in a.pairs {
      body(
        DelayedPair(
          kind: pair.kind, clientToServer: pair.clientToServer,
          delay: a.oneWayDelay(
            clientToServer: pair.clientToServer, client: pair.client.timeNanoseconds,
            server: pair.server.timeNanoseconds),
          clientTime: pair.client.timeNanoseconds, clientFrame: pair.client.frame, source: pair.client.source,
          destination: pair.client.destination))
    }
  }
}

/// The pairs a windowed walk logged; pairs whose direction was not decided are left out (as
/// an in-memory alignment leaves them out of `pairs`).
struct LoggedPairDelays: PairDelays {
  let alignment: Alignment
  let logged: PairTimes
  let fromClient: [Bool?]

  init(_ a: Alignment, logged: PairTimes) {
    alignment = a
    self.logged = logged
    fromClient = logged.flows.map { a.hosts.fromClient($0.source.address) }
  }

  func forEach(_ body: (DelayedPair) -> Void) throws(CaptureFileError) {
    try logged.forEach { pair in
      guard let clientToServer = fromClient[pair.flow] else { return }
      let flow = logged.flows[pair.flow]
      body(
        DelayedPair(
          kind: pair.kind, clientToServer: clientToServer,
          delay: alignment.oneWayDelay(
            clientToServer: clientToServer, client: pair.clientTime, server: pair.serverTime),
          clientTime: pair.clientTime, clientFrame: pair.clientFrame, source: flow.source,
          destination: flow.destination))
    }
  }
}

/// The exact k-th smallest value per group, found in two passes with memory that does not
/// follow the number of values: a histogram of ordered, logarithmic buckets (64 per
/// octave) finds each group's bucket, the second pass keeps only that bucket's values.
/// Should one bucket hold more than `keepLimit` values (all within 1.6% of each other), the
/// bucket's lower edge stands in for the exact value.
struct GroupSelection {
  static let groups = 8
  static let keepLimit = 1 << 18
  /// Buckets per sign: 64 exact small magnitudes, then 64 per octave up to 2^63.
  static let half = 64 + 58 * 64

  /// The bucket of `v`, increasing with `v`.
  static func bucket(_ v: Int64) -> Int {
    let m = v.magnitude
    let index: Int
    if m < 64 {
      index = Int(m)
    } else {
      let exponent = 63 - m.leadingZeroBitCount
      index = 64 + (exponent - 6) * 64 + Int((m >> UInt64(exponent - 6)) & 63)
    }
    return v < 0 ? half - 1 - index : half + index
  }

  /// The smallest value in bucket `b`.
  static func lowerEdge(_ b: Int) -> Int64 {
    let negative = b < half
    let index = negative ? half - 1 - b : b - half
    let magnitude: UInt64 =
      index < 64 ? UInt64(index) : (UInt64(64 + (index - 64) % 64) << UInt64((index - 64) / 64))
    return negative ? -Int64(clamping: magnitude) : Int64(clamping: magnitude)
  }

  /// Per group, the value of rank `ranks[group]` (0-based) among the values `pass` gives
  /// it; nil for a group with no values. `pass` is called twice.
  static func select<Failure: Error>(
    ranks: [Int], _ pass: ((_ group: Int, _ value: Int64) -> Void) throws(Failure) -> Void
  ) throws(Failure) -> [Int64?] {
    var histograms = [[Int]](repeating: [], count: groups)
    try pass { group, value in
      if histograms[group].isEmpty { histograms[group] = [Int](repeating: 0, count: 2 * half) }
      histograms[group][bucket(value)] += 1
    }
    // Each group's bucket holding its rank, and the rank within that bucket.
    var target = [(bucket: Int, rank: Int, count: Int)?](repeating: nil, count: groups)
    for group in 0..<groups where !histograms[group].isEmpty && ranks[group] >= 0 {
      var below = 0
      for (b, count) in histograms[group].enumerated() where count > 0 {
        if below + count > ranks[group] {
          target[group] = (b, ranks[group] - below, count)
          break
        }
        below += count
      }
    }
    var kept = [[Int64]](repeating: [], count: groups)
    try pass { group, value in
      guard let t = target[group], t.count <= keepLimit, bucket(value) == t.bucket else { return }
      kept[group].append(value)
    }
    return (0..<groups).map { group in
      guard let t = target[group] else { return nil }
      guard t.count <= keepLimit else { return lowerEdge(t.bucket) }
      kept[group].sort()
      return kept[group][t.rank]
    }
  }
}
