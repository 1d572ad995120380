import Alignment
import CaptureFiles
import Foundation

/// One-way delays of one direction: count, minimum, median, maximum (nanoseconds).
public struct DelaySummary: Sendable, Equatable {
  public var clientToServer: Bool
  public var count: Int
  public var minimum: Int64
  public var median: Int64
  public var maximum: Int64
  /// True when `median` comes from a histogram (within 0.5 %), not from every value.
  public var medianApproximate: Bool

  /// The exact summary of `delays` (nil when empty).
  static func exact(_ delays: [Int64], clientToServer: Bool) -> DelaySummary? {
    guard !delays.isEmpty else { return nil }
    let sorted = delays.sorted()
    return DelaySummary(
      clientToServer: clientToServer, count: sorted.count, minimum: sorted[0],
      median: sorted[sorted.count / 2],
      maximum: sorted[sorted.count - 1], medianApproximate: false)
  }
}

/// Delays counted in logarithmic bins (each 1 % wide), so a summary needs fixed memory
/// however many pairs there are. Minimum and maximum are exact.
struct DelayHistogram {
  let clientToServer: Bool
  private static let binsPerSign = 2600  // 1.01^2600 > 10^11 ns
  private var bins: [Int] = []
  private(set) var count = 0
  private var minimum = Int64.max
  private var maximum = Int64.min

  init(clientToServer: Bool) { self.clientToServer = clientToServer }

  private static func bin(_ value: Int64) -> Int {
    let magnitude = min(Double(value.magnitude), 1e11)
    let step = magnitude < 1 ? 0 : min(binsPerSign - 1, Int(log(magnitude) / log(1.01)) + 1)
    return value < 0 ? binsPerSign - 1 - step : binsPerSign + step
  }

  private static func representative(_ bin: Int) -> Int64 {
    let step = bin >= binsPerSign ? bin - binsPerSign : binsPerSign - 1 - bin
    let magnitude = step == 0 ? 0 : Int64((pow(1.01, Double(step) - 0.5)).rounded())
    return bin >= binsPerSign ? magnitude : -magnitude
  }

  mutating func add(_ value: Int64) {
    if bins.isEmpty { bins = [Int](repeating: 0, count: 2 * Self.binsPerSign) }
    bins[Self.bin(value)] += 1
    count += 1
    minimum = min(minimum, value)
    maximum = max(maximum, value)
  }

  func summary() -> DelaySummary? {
    guard count > 0 else { return nil }
    var seen = 0
    var median = minimum
    for (bin, n) in bins.enumerated() where n > 0 {
      seen += n
      if seen > count / 2 {
        median = min(max(Self.representative(bin), minimum), maximum)
        break
      }
    }
    return DelaySummary(
      clientToServer: clientToServer, count: count, minimum: minimum, median: median, maximum: maximum,
      medianApproximate: true)
  }
}

extension MergeOutputs {
  /// The one-way delays per direction and the causality violations of a windowed walk's
  /// pairs, read from its pair file (when no merged.pcapng pass counts them).
  static func delays(_ a: Alignment, logged: PairTimes) throws(CaptureFileError) -> ([DelaySummary], Int) {
    var histograms = [DelayHistogram(clientToServer: true), DelayHistogram(clientToServer: false)]
    var violations = 0
    let fromClient = logged.flows.map { a.hosts.fromClient($0.source.address) }
    try logged.forEach { pair in
      guard let clientToServer = fromClient[pair.flow] else { return }
      if a.violatesCausality(clientToServer: clientToServer, client: pair.clientTime, server: pair.serverTime)
      {
        violations += 1
      }
      histograms[clientToServer ? 0 : 1].add(
        a.oneWayDelay(clientToServer: clientToServer, client: pair.clientTime, server: pair.serverTime))
    }
    return (histograms.compactMap { $0.summary() }, violations)
  }
}
