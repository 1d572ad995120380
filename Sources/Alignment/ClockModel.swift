/// A linear relation between the two capture clocks:
/// `server = client + offset + skew × (client − reference)`, in nanoseconds, where
/// `reference` is the start of the client capture.
public struct ClockModel: Sendable, Equatable {
  public var offsetNanoseconds: Double
  /// Guaranteed bounds of the offset at the reference time (NaN-free; ±infinity when open).
  public var offsetLower: Double
  public var offsetUpper: Double
  /// Parts per million.
  public var skewPPM: Double
  public var skewLower: Double
  public var skewUpper: Double
  public var referenceNanoseconds: Int64

  public init(
    offsetNanoseconds: Double, offsetLower: Double, offsetUpper: Double, skewPPM: Double, skewLower: Double,
    skewUpper: Double, referenceNanoseconds: Int64
  ) {
    self.offsetNanoseconds = offsetNanoseconds
    self.offsetLower = offsetLower
    self.offsetUpper = offsetUpper
    self.skewPPM = skewPPM
    self.skewLower = skewLower
    self.skewUpper = skewUpper
    self.referenceNanoseconds = referenceNanoseconds
  }

  /// The server clock reading at client time `client`. Epoch nanoseconds do not fit a
  /// Double exactly (53 bits), so only the small correction is computed in floating point.
  public func serverTime(atClient client: Int64) -> Int64 {
    let x = Double(client &- referenceNanoseconds)
    return client &+ Int64(clampingRounded: offsetNanoseconds + skewPPM * 1e-6 * x)
  }

  /// The client clock reading at server time `server` (inverse of `serverTime`).
  public func clientTime(atServer server: Int64) -> Int64 {
    // server − r = (c − r)(1 + k) + o  ⇒  c = r + (server − r − o) / (1 + k)
    let k = skewPPM * 1e-6
    let y = Double(server &- referenceNanoseconds)
    return referenceNanoseconds &+ Int64(clampingRounded: (y - offsetNanoseconds) / (1 + k))
  }
}

/// One message seen on both sides: sent at `sendTime` on the sender's clock, received at
/// `receiveTime` on the receiver's clock.
public struct PairedTimes: Sendable, Equatable {
  public var clientToServer: Bool
  /// Client clock time of the packet (send time when client→server, receive time otherwise).
  public var clientNanoseconds: Int64
  public var serverNanoseconds: Int64

  public init(clientToServer: Bool, clientNanoseconds: Int64, serverNanoseconds: Int64) {
    self.clientToServer = clientToServer
    self.clientNanoseconds = clientNanoseconds
    self.serverNanoseconds = serverNanoseconds
  }
}

/// How much the alignment can be trusted.
public enum AlignmentVerdict: String, Sendable {
  /// Pairs in both directions bound the offset from both sides.
  case bounded
  /// Pairs in one direction only: a half-bound.
  case oneSided = "one-sided"
  /// Packets were seen on both sides, but nothing tells which side sent them: no bounds.
  case cannotTell = "cannot-tell"
  /// No common packets; the agents' clock probe was used.
  case probe
  /// Nothing to align with; offset 0.
  case none
}

/// Fits a clock model to paired times with guaranteed bounds (Moon et al. 1999 style).
///
/// Every client→server pair says the server received after the client sent:
/// `ts ≥ tc + o + k·x` ⇒ `o + k·x ≤ ts − tc` (x = tc − reference). Every server→client pair says
/// `o + k·x ≥ ts − tc`. The feasible (o, k) set is convex: the upper convex hull of the
/// server→client points bounds it from below, the lower hull of the client→server points
/// from above. The estimate is the middle of the feasible offset range at the middle of the
/// feasible skew range (symmetric minimum delays).
public enum ClockFitter {
  /// Skews beyond this are not physical for crystal clocks; the search stays inside.
  public static let maximumSkewPPM = 500.0

  struct Point {
    var x: Double
    var y: Double
  }

  public struct Fit: Sendable {
    public var model: ClockModel
    public var verdict: AlignmentVerdict
    public var feasible: Bool
  }

  /// Fits one segment. `reference` is the client time the offset refers to.
  public static func fit(_ pairs: [PairedTimes], reference: Int64) -> Fit {
    var up: [Point] = []  // client→server: o + k x ≤ y
    var down: [Point] = []  // server→client: o + k x ≥ y
    for pair in pairs {
      let point = Point(
        x: Double(pair.clientNanoseconds &- reference),
        y: Double(pair.serverNanoseconds &- pair.clientNanoseconds))
      if pair.clientToServer { up.append(point) } else { down.append(point) }
    }
    let upper = lowerHull(up)
    let lower = upperHull(down)
    // Bounds as functions of skew k (per unit, not ppm).
    func upperBound(_ k: Double) -> Double { upper.reduce(Double.infinity) { min($0, $1.y - k * $1.x) } }
    func lowerBound(_ k: Double) -> Double { lower.reduce(-Double.infinity) { max($0, $1.y - k * $1.x) } }
    let kMax = maximumSkewPPM * 1e-6
    if upper.isEmpty && lower.isEmpty {
      return Fit(
        model: ClockModel(
          offsetNanoseconds: 0, offsetLower: -.infinity, offsetUpper: .infinity, skewPPM: 0,
          skewLower: -maximumSkewPPM,
          skewUpper: maximumSkewPPM, referenceNanoseconds: reference), verdict: .none, feasible: true)
    }
    if upper.isEmpty || lower.isEmpty {
      // One direction only: with one-way pairs the skew cannot be separated; assume none.
      let bound = upper.isEmpty ? lowerBound(0) : upperBound(0)
      return Fit(
        model: ClockModel(
          offsetNanoseconds: bound, offsetLower: upper.isEmpty ? bound : -.infinity,
          offsetUpper: upper.isEmpty ? .infinity : bound, skewPPM: 0, skewLower: -maximumSkewPPM,
          skewUpper: maximumSkewPPM, referenceNanoseconds: reference), verdict: .oneSided, feasible: true)
    }
    // gap(k) = upper(k) − lower(k) is concave: find its maximum, then where it is ≥ 0.
    func gap(_ k: Double) -> Double { upperBound(k) - lowerBound(k) }
    let best = ternaryMaximum(gap, -kMax, kMax)
    guard gap(best) >= 0 else {
      return Fit(
        model: ClockModel(
          offsetNanoseconds: (upperBound(best) + lowerBound(best)) / 2, offsetLower: upperBound(best),
          offsetUpper: lowerBound(best), skewPPM: best * 1e6, skewLower: best * 1e6, skewUpper: best * 1e6,
          referenceNanoseconds: reference), verdict: .bounded, feasible: false)
    }
    let kLow = bisect({ gap($0) >= 0 }, outside: -kMax, inside: best)
    let kHigh = bisect({ gap($0) >= 0 }, outside: kMax, inside: best)
    let k = (kLow + kHigh) / 2
    // Offset range over the whole feasible set: max of upper (concave), min of lower (convex).
    let offsetHigh = upperBound(ternaryMaximum(upperBound, kLow, kHigh))
    let offsetLow = lowerBound(ternaryMaximum({ -lowerBound($0) }, kLow, kHigh))
    let offset = (upperBound(k) + lowerBound(k)) / 2
    return Fit(
      model: ClockModel(
        offsetNanoseconds: offset, offsetLower: offsetLow, offsetUpper: offsetHigh, skewPPM: k * 1e6,
        skewLower: kLow * 1e6, skewUpper: kHigh * 1e6, referenceNanoseconds: reference), verdict: .bounded,
      feasible: true)
  }

  static func ternaryMaximum(_ f: (Double) -> Double, _ low: Double, _ high: Double) -> Double {
    var a = low
    var b = high
    for _ in 0..<100 {
      let m1 = a + (b - a) / 3
      let m2 = b - (b - a) / 3
      if f(m1) < f(m2) { a = m1 } else { b = m2 }
    }
    return (a + b) / 2
  }

  /// The boundary between `outside` (predicate may fail) and `inside` (predicate holds).
  static func bisect(_ holds: (Double) -> Bool, outside: Double, inside: Double) -> Double {
    if holds(outside) { return outside }
    var out = outside
    var inn = inside
    for _ in 0..<100 {
      let mid = (out + inn) / 2
      if holds(mid) { inn = mid } else { out = mid }
    }
    return inn
  }

  /// Lower convex hull (for min over lines y − k x), points sorted by x.
  static func lowerHull(_ points: [Point]) -> [Point] {
    let sorted = points.sorted { ($0.x, $0.y) < ($1.x, $1.y) }
    var hull: [Point] = []
    for p in sorted {
      while hull.count >= 2 && cross(hull[hull.count - 2], hull[hull.count - 1], p) <= 0 { hull.removeLast() }
      hull.append(p)
    }
    return hull
  }

  static func upperHull(_ points: [Point]) -> [Point] {
    let sorted = points.sorted { ($0.x, $0.y) < ($1.x, $1.y) }
    var hull: [Point] = []
    for p in sorted {
      while hull.count >= 2 && cross(hull[hull.count - 2], hull[hull.count - 1], p) >= 0 { hull.removeLast() }
      hull.append(p)
    }
    return hull
  }

  static func cross(_ o: Point, _ a: Point, _ b: Point) -> Double {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
  }
}

extension Int64 {
  /// The nearest Int64 to `value`, the extreme one when it is beyond the range, 0 for NaN.
  /// Times from a damaged or hostile file can be anything; a conversion must not trap.
  public init(clampingRounded value: Double) {
    if value.isNaN {
      self = 0
    } else if value >= 9.223_372_036_854_775e18 {
      self = .max
    } else if value <= -9.223_372_036_854_775e18 {
      self = .min
    } else {
      self = Int64(value.rounded())
    }
  }
}
