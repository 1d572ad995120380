import Alignment
import CaptureFiles
import SMCWire

/// Something worth a look in a two-sided capture.
public struct Finding: Sendable {
  public enum Kind: String, Sendable, CaseIterable {
    case cdcNotReceived = "cdc-not-received"
    case cdcNotSent = "cdc-not-sent"
    case seqnoGap = "seqno-gap"
    case seqnoDuplicate = "seqno-duplicate"
    case cursorRegression = "cursor-regression"
    case declined
    case fallback
    case delayOutlier = "delay-outlier"
    case tcpRetransmission = "tcp-retransmission"
    case captureDrops = "capture-drops"
  }

  public var kind: Kind
  /// Whose capture shows it; `both` for what needs both captures (delays).
  public var side: SeenOn
  public var timeNanoseconds: Int64?
  public var connection: String
  public var message: String
}

/// Where one-way delays count as outliers, per kind and direction: above the median by more
/// than `factor` median absolute deviations, and at least `floorNanoseconds`.
public struct OutlierThreshold: Sendable {
  public static let factor: Int64 = 20
  /// Scheduling on a busy host alone delays a capture by up to about this much.
  public static let floorNanoseconds: Int64 = 1_000_000
  public var kind: PairKind
  public var clientToServer: Bool
  public var pairs: Int
  public var medianNanoseconds: Int64
  public var deviationNanoseconds: Int64
  public var thresholdNanoseconds: Int64

  public var text: String {
    "\(kind.rawValue) \(clientToServer ? "client->server" : "server->client"): \(pairs) pairs, median \(medianNanoseconds / 1000) us, MAD \(deviationNanoseconds / 1000) us, outlier above \(thresholdNanoseconds / 1000) us"
  }
}

/// Gathers the findings each capture shows on its own (seqno gaps and duplicates, cursor
/// regressions, TCP retransmissions, fallbacks, capture drops) while the pairing walk reads
/// it: hand one to `Aligner.align(..., observer:)`, then to `FindingsBuilder.build`.
public final class CaptureFindingsObserver: PairingWalkObserver {
  /// Per side (client first, as the walk reads them), in the order the events came.
  private(set) var sides: [[Finding]] = []
  private var side = Side.client
  private var decoder: OnePassCaptureDecoder?
  private var checks = EventChecks()
  /// This side's findings so far, with the connection of each TCP retransmission (kept only
  /// if the connection turns out to be SMC's).
  private var pending: [(finding: Finding, tcpConnection: ConnectionKey?)] = []

  public init() {}

  public func walkBegins(path: String, side: Side, format: CaptureFormat, layout: DumpHeaderLayout?) {
    self.side = side
    decoder = OnePassCaptureDecoder(
      path: path, format: format, layout: layout ?? DumpHeaderLayout(source: .unknown))
    checks = EventChecks()
    pending = []
  }

  public func observe(_ packet: CapturedPacket, linkType: LinkType) {
    decoder?.decode(packet, linkType: linkType) { event in check(event) }
  }

  public func walkEnds(interfaces: [CaptureInterface]) {
    guard var decoder else { return }
    decoder.finish { event in check(event) }
    var found = pending.compactMap { finding, connection in
      connection.map { decoder.isSMCRelated($0) } ?? true ? finding : nil
    }
    if side == .client { found += FindingsBuilder.fallbacks(decoder.connections, side: side) }
    found += FindingsBuilder.captureDrops(interfaces, side: side)
    sides.append(found)
    // The next side (or the outputs written after the walk) need none of this side's state.
    self.decoder = nil
    checks = EventChecks()
  }

  private func check(_ event: SMCEvent) {
    // A segment carrying the SMC option counts whatever its connection turns out to be.
    let connection =
      event.tcp?.smcOption == true ? nil : ConnectionKey(event.source, event.destination)
    for finding in checks.check(event, side: side) {
      pending.append((finding, finding.kind == .tcpRetransmission ? connection : nil))
    }
  }

}

/// The per-event checks of one capture: CDC seqno gaps and duplicates, producer cursor
/// regressions, TCP segments sent again. Flows are keyed by their endpoints (the text is made
/// only for a finding): the checks run on every event of both captures.
struct EventChecks {
  /// One direction of a connection.
  struct Flow: Hashable {
    var source: Endpoint
    var destination: Endpoint
    /// A RoCE link carries many connections' CDCs: its stream is the QP and the token too.
    var roceStream: RoCEStream?

    struct RoCEStream: Hashable {
      var queuePair: UInt32
      var token: UInt32
    }

    init(_ event: SMCEvent) {
      source = event.source
      destination = event.destination
      if let roce = event.roce, let token = event.cdc?.token {
        roceStream = RoCEStream(queuePair: roce.destinationQP, token: token)
      }
    }

    /// As `SMCEvent.streamName` says it.
    var text: String {
      guard let roceStream else { return "\(source) -> \(destination)" }
      return
        "\(source) -> \(destination) qp 0x\(String(roceStream.queuePair, radix: 16)) token \(roceStream.token)"
    }
  }

  var lastSeqno: [Flow: UInt16] = [:]
  var lastCursor: [Flow: UInt64] = [:]
  var segments = SentSegments()

  mutating func check(_ event: SMCEvent, side: Side) -> [Finding] {
    let flow = Flow(event)
    var findings: [Finding] = []
    if let cdc = event.cdc {
      if let finding = checkSeqno(cdc, event, flow: flow, side: side) { findings.append(finding) }
      if let finding = checkCursor(cdc, event, flow: flow, side: side) { findings.append(finding) }
    }
    if let finding = checkRetransmission(event, flow: flow, side: side) { findings.append(finding) }
    return findings
  }

  private mutating func checkSeqno(_ cdc: CDCMessage, _ event: SMCEvent, flow: Flow, side: Side)
    -> Finding?
  {
    guard let seq = cdc.sequenceNumber, seq != 0 else { return nil }
    defer { lastSeqno[flow] = seq }
    guard let previous = lastSeqno[flow] else { return nil }
    if seq == previous {
      return Finding(
        kind: .seqnoDuplicate, side: .side(side), timeNanoseconds: event.timeNanoseconds,
        connection: flow.text,
        message:
          "CDC seqno \(seq) appears twice (frame \(event.frame)); a re-sent failed post shows this way on the sender"
      )
    }
    guard seq != previous &+ 1 && Int16(bitPattern: seq &- previous) > 0 else { return nil }
    return Finding(
      kind: .seqnoGap, side: .side(side), timeNanoseconds: event.timeNanoseconds, connection: flow.text,
      message:
        "CDC seqno jumps from \(previous) to \(seq) (frame \(event.frame)): \(seq &- previous &- 1) missing")
  }

  private mutating func checkCursor(_ cdc: CDCMessage, _ event: SMCEvent, flow: Flow, side: Side)
    -> Finding?
  {
    let cursor = UInt64(cdc.producer.wrap) << 32 | UInt64(cdc.producer.count)
    let previous = lastCursor[flow]
    lastCursor[flow] = max(cursor, previous ?? 0)
    guard let previous, cursor < previous, cdc.producer.wrap != 0 || cursor != 0 else { return nil }
    return Finding(
      kind: .cursorRegression, side: .side(side), timeNanoseconds: event.timeNanoseconds,
      connection: flow.text,
      message:
        "producer cursor steps back from \(previous >> 32):\(previous & 0xFFFF_FFFF) to \(cdc.producer.wrap):\(cdc.producer.count) (frame \(event.frame)); a link failover re-sends this way"
    )
  }

  private mutating func checkRetransmission(_ event: SMCEvent, flow: Flow, side: Side) -> Finding? {
    guard event.kind == .tcp, let tcp = event.tcp else { return nil }
    guard segments.sentAgain(event, tcp) else { return nil }
    return Finding(
      kind: .tcpRetransmission, side: .side(side), timeNanoseconds: event.timeNanoseconds,
      connection: flow.text,
      message:
        "TCP segment seq \(tcp.sequence) (\(event.tcpPayloadLength) bytes) sent again (frame \(event.frame))")
  }
}

/// The TCP segments (with payload, SYN or FIN) each connection sent, to tell a segment sent
/// again: same direction, sequence number, length and SYN/FIN/RST flags. Eight bytes per
/// segment; a closed connection's (RST, or FIN both ways) are forgotten once `lingering`
/// more connections closed after it, so memory follows the open connections, not the file.
/// A copy that comes later than that is not told (a FIN sent again after its peer's last ACK
/// was lost comes within a few round trips, long before).
struct SentSegments {
  /// Closed connections whose segments are still kept.
  static let lingering = 1024

  struct Connection {
    /// Packed segment (`key`) → seen more than once.
    var seen: [UInt64: Bool] = [:]
    var finFromLower = false
    var finFromUpper = false
    var closed = false

    /// Notes one segment (`segment`: its key when it counts); says whether it is the first
    /// copy sent again and whether it closed the connection.
    mutating func note(_ segment: UInt64?, flags: TCPFlags, fromLower: Bool) -> (again: Bool, closes: Bool) {
      var again = false
      if let segment {
        if let repeated = seen[segment] {
          again = !repeated
          if again { seen[segment] = true }
        } else {
          seen[segment] = false
        }
      }
      if flags.contains(.fin) {
        if fromLower { finFromLower = true } else { finFromUpper = true }
      }
      guard !closed, flags.contains(.rst) || (finFromLower && finFromUpper) else { return (again, false) }
      closed = true
      return (again, true)
    }
  }

  private var connections: [ConnectionKey: Connection] = [:]
  /// Closed connections in the order they closed: a ring of `lingering`.
  private var closedOrder: [ConnectionKey] = []
  private var closedNext = 0

  /// Connections whose segments are kept (open, and closed not long ago).
  var connectionCount: Int { connections.count }

  /// Whether `event` (a TCP segment) repeats one sent before, for the first time.
  mutating func sentAgain(_ event: SMCEvent, _ tcp: TCPHeader) -> Bool {
    let flags = tcp.flags
    let counts = event.tcpPayloadLength > 0 || flags.contains(.syn) || flags.contains(.fin)
    guard counts || flags.contains(.rst) else { return false }
    let key = ConnectionKey(event.source, event.destination)
    let fromLower = event.source == key.lower
    let segment =
      counts
      ? Self.key(tcp.sequence, length: event.tcpPayloadLength, flags: flags, fromLower: fromLower) : nil
    // In place: a copy of the connection would copy its table on every segment.
    let (again, closes) = connections[key, default: Connection()].note(
      segment, flags: flags, fromLower: fromLower)
    if closes { closed(key) }
    return again
  }

  /// Notes `key` closed; forgets the connection that closed `lingering` closes ago.
  private mutating func closed(_ key: ConnectionKey) {
    if closedOrder.count < Self.lingering {
      closedOrder.append(key)
      return
    }
    let oldest = closedOrder[closedNext]
    if connections[oldest]?.closed == true { connections[oldest] = nil }
    closedOrder[closedNext] = key
    closedNext = (closedNext + 1) % Self.lingering
  }

  /// Direction, SYN/FIN/RST, length (28 bits: more than any captured frame) and sequence
  /// number in one word.
  static func key(_ sequence: UInt32, length: Int, flags: TCPFlags, fromLower: Bool) -> UInt64 {
    (fromLower ? 1 << 63 : 0) | UInt64(flags.rawValue & 0x07) << 60
      | (UInt64(truncatingIfNeeded: length) & 0x0FFF_FFFF) << 32 | UInt64(sequence)
  }
}

/// Puts together the findings of `smcpair merge`: from the pairing (CDC records one side
/// lacks, delay outliers) and from what `CaptureFindingsObserver` gathered in the same walk.
public enum FindingsBuilder {
  /// Groups with fewer pairs have no outlier test.
  static let outlierMinimumPairs = 20

  /// Every finding, in time order.
  public static func build(_ a: Alignment, observed: CaptureFindingsObserver) -> [Finding] {
    combine(
      unpairedCDC(a) + observed.sides.joined()
        + delayOutlierFindings(delayOutliers(ListedPairDelays(alignment: a))))
  }

  /// Every finding of a windowed walk, in time order: `observed` are its two sides'
  /// observers, `logged` the pairs it logged (read in passes, not held).
  public static func build(_ a: Alignment, observed: PerSide<CaptureFindingsObserver>, logged: PairTimes)
    throws(CaptureFileError) -> (findings: [Finding], thresholds: [OutlierThreshold])
  {
    let outliers = try delayOutliers(LoggedPairDelays(a, logged: logged))
    let findings = combine(
      unpairedCDC(a) + observed.client.sides.joined() + observed.server.sides.joined()
        + delayOutlierFindings(outliers))
    return (findings, outliers.map(\.threshold))
  }

  private static func combine(_ findings: [Finding]) -> [Finding] {
    findings.sorted { ($0.timeNanoseconds ?? 0) < ($1.timeNanoseconds ?? 0) }
  }

  /// CDC records only one side has: only when the captures share packets at all (else they
  /// are not of the same conversation) and the record's sender is known.
  static func unpairedCDC(_ a: Alignment) -> [Finding] {
    guard a.pairCount > 0 else { return [] }
    var findings: [Finding] = []
    for packet in a.unpairedClient where packet.kind == .cdc {
      guard let sentHere = a.hosts.fromClient(packet.source.address) else { continue }
      findings.append(
        Finding(
          kind: sentHere ? .cdcNotReceived : .cdcNotSent, side: .side(.client),
          timeNanoseconds: packet.timeNanoseconds,
          connection: "\(packet.source) -> \(packet.destination)",
          message: sentHere
            ? "CDC sent by the client (frame \(packet.frame)) is not in the server's capture: never received, or dropped by the server's kernel"
            : "CDC received by the client (frame \(packet.frame)) is not in the server's capture as sent"))
    }
    for packet in a.unpairedServer where packet.kind == .cdc {
      guard let fromClient = a.hosts.fromClient(packet.source.address) else { continue }
      let sentHere = !fromClient
      findings.append(
        Finding(
          kind: sentHere ? .cdcNotReceived : .cdcNotSent, side: .side(.server),
          timeNanoseconds: packet.timeNanoseconds,
          connection: "\(packet.source) -> \(packet.destination)",
          message: sentHere
            ? "CDC sent by the server (frame \(packet.frame)) is not in the client's capture: never received"
            : "CDC received by the server (frame \(packet.frame)) is not in the client's capture as sent"))
    }
    return findings
  }

  /// Connections that fell back to TCP (declined, or inferred).
  static func fallbacks(_ connections: [ConnectionRecord], side: Side) -> [Finding] {
    connections.compactMap { connection in
      guard case .fallback(let code, let inferred, let detail) = connection.outcome else { return nil }
      let name =
        connection.client.flatMap { c in connection.server.map { "\(c) -> \($0)" } }
        ?? connection.key.description
      return Finding(
        kind: connection.declineSeen ? .declined : .fallback, side: .side(side),
        timeNanoseconds: connection.firstNanoseconds, connection: name,
        message:
          "fell back to TCP: \(detail)\(code.map { " (\(DeclineReason.hexCode($0)))" } ?? "")\(inferred ? ", inferred" : "")"
      )
    }
  }

  /// Interfaces whose statistics count dropped packets.
  static func captureDrops(_ interfaces: [CaptureInterface], side: Side) -> [Finding] {
    interfaces.compactMap { interface in
      let dropped = (interface.statistics?.interfaceDropped ?? 0) + (interface.statistics?.osDropped ?? 0)
      guard dropped > 0 else { return nil }
      return Finding(
        kind: .captureDrops, side: .side(side), timeNanoseconds: interface.statistics?.timestampNanoseconds,
        connection: interface.name ?? "?",
        message:
          "\(dropped) packets were dropped while capturing \(interface.name ?? "an interface"): the timeline has gaps there"
      )
    }
  }

  /// Pairs whose one-way delay is an outlier for their kind and direction.
  static func delayOutlierFindings(_ outliers: [(threshold: OutlierThreshold, outliers: [DelayedPair])])
    -> [Finding]
  {
    outliers.flatMap { threshold, outliers in
      outliers.map { pair in
        Finding(
          kind: .delayOutlier, side: .both, timeNanoseconds: pair.clientTime,
          connection: "\(pair.source) -> \(pair.destination)",
          message:
            "one-way delay \(pair.delay / 1000) us against a median of \(threshold.medianNanoseconds / 1000) us for \(pair.kind.rawValue) \(pair.clientToServer ? "client->server" : "server->client") (threshold \(threshold.thresholdNanoseconds / 1000) us; client frame \(pair.clientFrame))"
        )
      }
    }
  }

  /// Per kind and direction with enough pairs: the threshold.
  public static func outlierThresholds(_ a: Alignment) -> [OutlierThreshold] {
    delayOutliers(ListedPairDelays(alignment: a)).map(\.threshold)
  }

  /// Per kind and direction with enough pairs: the threshold and the pairs above it. The
  /// median and the median absolute deviation are exact (`GroupSelection`); the pairs are
  /// read in five passes, none held.
  static func delayOutliers<Delays: PairDelays>(_ delays: Delays) throws(Delays.Failure) -> [(
    threshold: OutlierThreshold, outliers: [DelayedPair]
  )] {
    let groups = GroupSelection.groups
    var counts = [Int](repeating: 0, count: groups)
    try delays.forEach { counts[$0.group] += 1 }
    let ranks = counts.map { $0 >= outlierMinimumPairs ? $0 / 2 : -1 }
    let medians = try GroupSelection.select(ranks: ranks) { (add) throws(Delays.Failure) in
      try delays.forEach { add($0.group, $0.delay) }
    }
    // Deviations as magnitudes: times from a damaged file may be anywhere in Int64's range.
    let deviations = try GroupSelection.select(ranks: ranks) { (add) throws(Delays.Failure) in
      try delays.forEach { pair in
        guard let median = medians[pair.group] else { return }
        add(pair.group, Int64(clamping: (pair.delay &- median).magnitude))
      }
    }
    var thresholds = [OutlierThreshold?](repeating: nil, count: groups)
    var limits = [Double](repeating: .infinity, count: groups)
    for group in 0..<groups where ranks[group] >= 0 {
      guard let median = medians[group], let mad = deviations[group] else { continue }
      let margin = max(
        Double(OutlierThreshold.factor) * Double(mad), Double(OutlierThreshold.floorNanoseconds))
      limits[group] = Double(median) + margin
      thresholds[group] = OutlierThreshold(
        kind: PairKind.allCases[group / 2], clientToServer: group % 2 == 0, pairs: counts[group],
        medianNanoseconds: median, deviationNanoseconds: mad,
        thresholdNanoseconds: Int64(clampingRounded: Double(median) + margin))
    }
    var outliers = [[DelayedPair]](repeating: [], count: groups)
    try delays.forEach { pair in
      guard Double(pair.delay) > limits[pair.group] else { return }
      outliers[pair.group].append(pair)
    }
    return (0..<groups).compactMap { group in
      thresholds[group].map { ($0, outliers[group]) }
    }
  }
}
