import Alignment
import CaptureFiles
import Foundation
import Rendering
import SMCWire
import Support

/// Writes the outputs of `smcpair merge`: merged.pcapng, timeline.jsonl and alignment.json
/// (always).
public enum MergeOutputs {
  /// `alignment.json`: offset (server − client) and bounds in ns at the start of the client
  /// capture, skew in ppm, pairs per kind, causality violations, verdict, segments, warnings.
  public static func alignmentJSON(
    _ a: Alignment, client: String, server: String, clientName: String = "client",
    serverName: String = "server"
  ) -> String {
    RecordCoding.text(
      AlignmentRecord(a, client: client, server: server, clientName: clientName, serverName: serverName),
      pretty: true) + "\n"
  }

  /// `merged.pcapng`: every packet of both captures on the reference clock, one IDB per side
  /// and interface (`<host>:<ifname>`), the same packet id on both copies of a paired packet,
  /// a comment on paired packets with the one-way delay. Two streams are merged in time order;
  /// interfaces are added as they appear. The pairs come from `a.pairs`.
  public static func writeMergedPcapng(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    reference: Side = .client
  ) throws(CaptureFileError) {
    var notes = ListedPairNotes(a)
    try writeMerged(
      a, client: client, server: server, clientName: clientName, serverName: serverName, to: path,
      reference: reference, notes: &notes)
  }

  /// The same file as `writeMergedPcapng`, with the pairs read from the note files of a
  /// windowed walk (`WindowedAligner`): memory stays flat. Counts the causality violations
  /// into `a` and returns the one-way delays per direction.
  public static func writeMergedPcapng(
    _ a: inout Alignment, logs: PairLogs, client: String, server: String, clientName: String,
    serverName: String, to path: String, reference: Side = .client
  ) throws(CaptureFileError) -> [DelaySummary] {
    var notes = try LoggedPairNotes(a, logs: logs)
    try writeMerged(
      a, client: client, server: server, clientName: clientName, serverName: serverName, to: path,
      reference: reference, notes: &notes)
    a.causalityViolations = notes.causalityViolations
    return notes.delays.compactMap { $0.summary() }
  }

  static func writeMerged(
    _ a: Alignment, client: String, server: String, clientName: String, serverName: String, to path: String,
    reference: Side, notes: inout some PairNotes
  ) throws(CaptureFileError) {
    // Written under a temporary name, renamed when complete: a merge killed midway leaves no
    // merged.pcapng that looks whole.
    let staged = StagedFile(finalPath: path)
    let writer = try PcapngWriter(
      path: staged.temporaryPath, application: "smcpair merge", os: nil,
      hardware:
        "clock model: server = client \(Int64(clampingRounded: a.model.offsetNanoseconds)) ns, skew \(a.model.skewPPM) ppm, bounds \(a.model.offsetLower)..\(a.model.offsetUpper) ns (\(a.verdict.rawValue))",
      mode: 0o600)
    // Each side is read on its own thread, ahead of the writer, in file order: the pairing
    // notes are in frame order.
    let paths = PerSide(client: client, server: server)
    var feeds = try PerSide.each { side throws(CaptureFileError) in
      try SideFeed(path: paths[side], side: side, order: .fileOrder)
    }
    var interfaces = MergedInterfaces(names: PerSide(client: clientName, server: serverName))
    func alignedTime(_ packet: CapturedPacket, side: Side) -> Int64 {
      guard side != reference else { return packet.timestampNanoseconds }
      return reference == .server
        ? a.serverTime(atClient: packet.timestampNanoseconds)
        : a.clientTime(atServer: packet.timestampNanoseconds)
    }
    var next = PerSide(client: try feeds.client.next()?.packet, server: try feeds.server.next()?.packet)
    var nextTime = PerSide.each { side in next[side].map { alignedTime($0, side: side) } ?? .max }
    var comment = PairComment()
    while next.client != nil || next.server != nil {
      let side: Side =
        next.client != nil && (next.server == nil || nextTime.client <= nextTime.server) ? .client : .server
      guard let packet = next[side] else { break }
      let note = try notes.note(
        side: side, packet: packet, linkType: feeds[side].interfaces[packet.interface].linkType)
      let id: Int
      if let known = interfaces.known(side: side, local: packet.interface) {
        id = known
      } else {
        id = try interfaces.add(
          side: side, local: packet.interface, feeds[side].interfaces[packet.interface], to: writer)
      }
      try write(packet, note, interface: id, time: nextTime[side], to: writer, comment: &comment)
      next[side] = try feeds[side].next()?.packet
      nextTime[side] = next[side].map { alignedTime($0, side: side) } ?? .max
    }
    try writer.close()
    try staged.commit()
  }

  /// One packet into merged.pcapng; a paired one with its pair number as packet id and its
  /// delay in a comment.
  static func write(
    _ packet: CapturedPacket, _ note: PacketNote, interface id: Int, time: Int64, to writer: PcapngWriter,
    comment: inout PairComment
  ) throws(CaptureFileError) {
    guard note.pairNumber > 0 else {
      try writer.writePacket(
        interface: id, timestampNanoseconds: time, data: packet.data, originalLength: packet.originalLength,
        direction: note.direction)
      return
    }
    comment.set(note)
    let written: Result<Void, CaptureFileError> = comment.bytes.withUnsafeBytes { text in
      do throws(CaptureFileError) {
        try writer.writePacket(
          interface: id, timestampNanoseconds: time, data: packet.data, originalLength: packet.originalLength,
          direction: note.direction, commentUTF8: text, packetID: UInt64(note.pairNumber))
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try written.get()
  }
}

/// merged.pcapng's interfaces: one per side and capture interface (`<host>:<ifname>`), added
/// as they first appear.
struct MergedInterfaces {
  /// The client's and the server's host names.
  let names: PerSide<String>
  /// Per side: the merged interface id of each of the capture's interfaces (-1: not yet).
  private var ids = PerSide<[Int]>(repeating: [])

  init(names: PerSide<String>) { self.names = names }

  func known(side: Side, local: Int) -> Int? {
    local < ids[side].count && ids[side][local] >= 0 ? ids[side][local] : nil
  }

  mutating func add(side: Side, local: Int, _ interface: CaptureInterface, to writer: PcapngWriter)
    throws(CaptureFileError) -> Int
  {
    while ids[side].count <= local { ids[side].append(-1) }
    let id = try writer.addInterface(
      InterfaceDescription(
        name: "\(names[side]):\(interface.name ?? "if\(local)")",
        description: side.rawValue, linkType: interface.linkType,
        snapLength: interface.snapLength))
    ids[side][local] = id
    return id
  }
}

/// "smcpair pair N: KIND DIRECTION, one-way delay X.Y us", built as bytes: a merge writes one
/// per paired packet, so no String on the way.
struct PairComment {
  private let prefix = Array("smcpair pair ".utf8)
  private let kindText = PairKind.allCases.map { Array(": \($0.rawValue) ".utf8) }
  private let toServerText = Array("client->server, one-way delay ".utf8)
  private let toClientText = Array("server->client, one-way delay ".utf8)
  private let unitText = Array(" us".utf8)
  private(set) var bytes: [UInt8] = []

  init() { bytes.reserveCapacity(96) }

  mutating func set(_ note: PacketNote) {
    let delay = note.delay
    let tenths = (delay + (delay >= 0 ? 50 : -50)) / 100
    bytes.removeAll(keepingCapacity: true)
    bytes += prefix
    TextWriter.decimal(UInt64(note.pairNumber), into: &bytes)
    bytes += kindText[note.kind.index]
    bytes += note.clientToServer ? toServerText : toClientText
    if tenths < 0 { bytes.append(UInt8(ascii: "-")) }
    TextWriter.decimal(UInt64(abs(tenths) / 10), into: &bytes)
    bytes.append(UInt8(ascii: "."))
    TextWriter.decimal(UInt64(abs(tenths) % 10), into: &bytes)
    bytes += unitText
  }
}

/// What merged.pcapng says about one packet: its pair (number 0: none) and direction.
struct PacketNote {
  var pairNumber = 0
  var kind = PairKind.tcp
  var clientToServer = false
  var delay: Int64 = 0
  var direction = PacketDirection.unknown

  /// Outbound when the packet left the host whose capture it is in, by the decided hosts.
  static func direction(source: IPAddress, side: Side, hosts: HostAddresses) -> PacketDirection {
    guard let fromClient = hosts.fromClient(source) else { return .unknown }
    return fromClient == (side == .client) ? .outbound : .inbound
  }
}

/// Gives the note of each packet, asked side by side in file order.
protocol PairNotes {
  mutating func note(side: Side, packet: CapturedPacket, linkType: LinkType) throws(CaptureFileError)
    -> PacketNote
}

/// Notes from the pairs of an in-memory alignment: pair number = index in `a.pairs` + 1.
struct ListedPairNotes: PairNotes {
  let alignment: Alignment
  /// Pair index per frame (frames are 1-based and dense), per side.
  var pairOfFrame: PerSide<[Int32]>

  init(_ a: Alignment) {
    alignment = a
    pairOfFrame = PerSide(
      client: [Int32](repeating: -1, count: a.clientPackets + 1),
      server: [Int32](repeating: -1, count: a.serverPackets + 1))
    for (index, pair) in a.pairs.enumerated() {
      if pair.client.frame < pairOfFrame.client.count { pairOfFrame.client[pair.client.frame] = Int32(index) }
      if pair.server.frame < pairOfFrame.server.count { pairOfFrame.server[pair.server.frame] = Int32(index) }
    }
  }

  func note(side: Side, packet: CapturedPacket, linkType: LinkType) -> PacketNote {
    var note = PacketNote()
    if !alignment.hosts.client.isEmpty || !alignment.hosts.server.isEmpty {
      let frame = FrameDecoder.decode(packet.data, linkType: linkType)
      if frame.issue == nil {
        note.direction = PacketNote.direction(source: frame.source, side: side, hosts: alignment.hosts)
      }
    }
    let index = packet.frame < pairOfFrame[side].count ? Int(pairOfFrame[side][packet.frame]) : -1
    guard index >= 0 else { return note }
    let pair = alignment.pairs[index]
    note.pairNumber = index + 1
    note.kind = pair.kind
    note.clientToServer = pair.clientToServer
    note.delay = alignment.oneWayDelay(
      clientToServer: pair.clientToServer, client: pair.client.timeNanoseconds,
      server: pair.server.timeNanoseconds)
    return note
  }
}

/// Notes from the per-side note files of a windowed walk, read in step with the writer.
struct LoggedPairNotes: PairNotes {
  let alignment: Alignment
  let logs: PairLogs
  let readers: PerSide<PairLogReader>
  /// Per source id: is it a client address? (nil: undecided)
  let fromClient: [Bool?]
  var causalityViolations = 0
  /// One-way delays: [client→server, server→client].
  var delays = [DelayHistogram(clientToServer: true), DelayHistogram(clientToServer: false)]

  init(_ a: Alignment, logs: PairLogs) throws(CaptureFileError) {
    alignment = a
    self.logs = logs
    readers = try logs.paths.map { path throws(CaptureFileError) in try PairLogReader(path: path) }
    fromClient = logs.sources.map { a.hosts.fromClient($0) }
  }

  mutating func note(side: Side, packet: CapturedPacket, linkType: LinkType) throws(CaptureFileError)
    -> PacketNote
  {
    guard let logged = readers[side].next() else {
      throw CaptureFileError(
        .corrupt, "frame \(packet.frame) is not in the pairing notes: the file changed while it was merged",
        path: logs.paths[side])
    }
    var note = PacketNote()
    guard logged.sourceID != LoggedNote.noSource else { return note }
    guard let client = fromClient[Int(logged.sourceID)] else { return note }
    note.direction = client == (side == .client) ? .outbound : .inbound
    guard logged.pairNumber > 0 else { return note }
    note.pairNumber = Int(logged.pairNumber)
    note.kind = PairKind.allCases[Int(logged.kind)]
    note.clientToServer = client
    let (c, s) =
      side == .client
      ? (packet.timestampNanoseconds, logged.partnerTime) : (logged.partnerTime, packet.timestampNanoseconds)
    note.delay = alignment.oneWayDelay(clientToServer: client, client: c, server: s)
    if side == .client {
      // Each pair once.
      if alignment.violatesCausality(clientToServer: client, client: c, server: s) {
        causalityViolations += 1
      }
      delays[client ? 0 : 1].add(note.delay)
    }
    return note
  }
}

/// The outputs `smcpair merge` can write besides alignment.json (always written).
public struct MergeFormats: OptionSet, Sendable, Hashable {
  public let rawValue: Int
  public init(rawValue: Int) { self.rawValue = rawValue }

  public static let pcapng = MergeFormats(rawValue: 1 << 0)
  public static let jsonl = MergeFormats(rawValue: 1 << 1)
  public static let html = MergeFormats(rawValue: 1 << 2)
  public static let report = MergeFormats(rawValue: 1 << 3)
  public static let all: MergeFormats = [.pcapng, .jsonl, .html, .report]

  /// Each format with its name on the command line, in the order the help lists them.
  public static let named: [(name: String, format: MergeFormats)] = [
    ("pcapng", .pcapng), ("jsonl", .jsonl), ("html", .html), ("report", .report),
  ]

  /// `--formats` text: names separated by commas. Throws the first unknown name.
  public init(parsing text: String) throws(UnknownFormat) {
    self = []
    for name in text.split(separator: ",") {
      guard let known = Self.named.first(where: { $0.name == name }) else {
        throw UnknownFormat(name: String(name))
      }
      insert(known.format)
    }
  }

  /// A `--formats` name that is not one of `named`.
  public struct UnknownFormat: Error, CustomStringConvertible {
    public var name: String
    public var description: String { "unknown format '\(name)'; choose from pcapng, jsonl, html, report" }
  }
}

/// alignment.json as a record: the clock model with its bounds, how the directions were
/// decided, segments, warnings (schema in docs/formats.md). Numbers that are unbounded
/// (infinite) are `null`; the rest are rounded to 0.001.
public struct AlignmentRecord: Codable, Sendable, Equatable {
  public var clientFile: String
  public var serverFile: String
  public var clientName: String
  public var serverName: String
  @NullWhenAbsent public var offsetNanoseconds: Double?
  @NullWhenAbsent public var offsetLowerNanoseconds: Double?
  @NullWhenAbsent public var offsetUpperNanoseconds: Double?
  @NullWhenAbsent public var skewPPM: Double?
  @NullWhenAbsent public var skewLowerPPM: Double?
  @NullWhenAbsent public var skewUpperPPM: Double?
  public var referenceNanoseconds: Int64
  /// Pairs per kind (`tcp`, `clc`, `cdc`, `data`), every kind present.
  public var pairs: [String: Int]
  public var causalityViolations: Int
  public var verdict: AlignmentVerdict
  public var clientPackets: Int
  public var serverPackets: Int
  public var clientAddresses: [String]
  public var serverAddresses: [String]
  public var direction: [Decision]
  public var undirectedPairs: Int
  public var segments: [Segment]
  public var warnings: [String]
  public var pairingWindow: Window?

  /// How one group of flows got its direction.
  public struct Decision: Codable, Sendable, Equatable {
    public var clientAddresses: [String]
    public var serverAddresses: [String]
    @NullWhenAbsent public var evidence: DirectionEvidence?
    public var pairs: Int
    public var explanation: String

    enum CodingKeys: String, CodingKey {
      case clientAddresses = "client_addresses"
      case serverAddresses = "server_addresses"
      case evidence, pairs, explanation
    }
  }

  /// A stretch of the captures with one clock model (a clock step starts a new one).
  public struct Segment: Codable, Sendable, Equatable {
    /// Client time; null: open-ended.
    @NullWhenAbsent public var startNanoseconds: Int64?
    @NullWhenAbsent public var endNanoseconds: Int64?
    public var pairs: Int
    @NullWhenAbsent public var offsetNanoseconds: Double?
    @NullWhenAbsent public var offsetLowerNanoseconds: Double?
    @NullWhenAbsent public var offsetUpperNanoseconds: Double?
    @NullWhenAbsent public var skewPPM: Double?

    enum CodingKeys: String, CodingKey {
      case startNanoseconds = "start_ns"
      case endNanoseconds = "end_ns"
      case pairs
      case offsetNanoseconds = "offset_ns"
      case offsetLowerNanoseconds = "offset_lower_ns"
      case offsetUpperNanoseconds = "offset_upper_ns"
      case skewPPM = "skew_ppm"
    }
  }

  /// Pairing within a window (`--formats pcapng`): how it went.
  public struct Window: Codable, Sendable, Equatable {
    public var windowNanoseconds: Int64
    public var mostWaiting: Int
    public var unpairedClient: Int
    public var unpairedServer: Int

    enum CodingKeys: String, CodingKey {
      case windowNanoseconds = "window_ns"
      case mostWaiting = "most_waiting"
      case unpairedClient = "unpaired_client"
      case unpairedServer = "unpaired_server"
    }
  }

  enum CodingKeys: String, CodingKey {
    case clientFile = "client_file"
    case serverFile = "server_file"
    case clientName = "client_name"
    case serverName = "server_name"
    case offsetNanoseconds = "offset_ns"
    case offsetLowerNanoseconds = "offset_lower_ns"
    case offsetUpperNanoseconds = "offset_upper_ns"
    case skewPPM = "skew_ppm"
    case skewLowerPPM = "skew_lower_ppm"
    case skewUpperPPM = "skew_upper_ppm"
    case referenceNanoseconds = "reference_ns"
    case pairs
    case causalityViolations = "causality_violations"
    case verdict
    case clientPackets = "client_packets"
    case serverPackets = "server_packets"
    case clientAddresses = "client_addresses"
    case serverAddresses = "server_addresses"
    case direction
    case undirectedPairs = "undirected_pairs"
    case segments, warnings
    case pairingWindow = "pairing_window"
  }

  public init(_ a: Alignment, client: String, server: String, clientName: String, serverName: String) {
    func number(_ v: Double) -> Double? { v.isFinite ? (v * 1000).rounded() / 1000 : nil }
    clientFile = client
    serverFile = server
    self.clientName = clientName
    self.serverName = serverName
    offsetNanoseconds = number(a.model.offsetNanoseconds)
    offsetLowerNanoseconds = number(a.model.offsetLower)
    offsetUpperNanoseconds = number(a.model.offsetUpper)
    skewPPM = number(a.model.skewPPM)
    skewLowerPPM = number(a.model.skewLower)
    skewUpperPPM = number(a.model.skewUpper)
    referenceNanoseconds = a.model.referenceNanoseconds
    var pairs: [String: Int] = [:]
    for kind in PairKind.allCases { pairs[kind.rawValue] = a.pairsByKind[kind, default: 0] }
    self.pairs = pairs
    causalityViolations = a.causalityViolations
    verdict = a.verdict
    clientPackets = a.clientPackets
    serverPackets = a.serverPackets
    clientAddresses = a.hosts.client.map(\.description).sorted()
    serverAddresses = a.hosts.server.map(\.description).sorted()
    direction = a.hosts.decisions.map { decision in
      Decision(
        clientAddresses: decision.client.map(\.description).sorted(),
        serverAddresses: decision.server.map(\.description).sorted(), evidence: decision.evidence,
        pairs: decision.pairs, explanation: decision.explanation)
    }
    undirectedPairs = a.undirectedPairs
    segments = a.segments.map { segment in
      Segment(
        startNanoseconds: segment.startClientNanoseconds == .min ? nil : segment.startClientNanoseconds,
        endNanoseconds: segment.endClientNanoseconds == .max ? nil : segment.endClientNanoseconds,
        pairs: segment.pairs, offsetNanoseconds: number(segment.model.offsetNanoseconds),
        offsetLowerNanoseconds: number(segment.model.offsetLower),
        offsetUpperNanoseconds: number(segment.model.offsetUpper), skewPPM: number(segment.model.skewPPM))
    }
    warnings = a.warnings
    pairingWindow = a.window.map {
      Window(
        windowNanoseconds: $0.windowNanoseconds, mostWaiting: $0.mostWaiting,
        unpairedClient: $0.unpairedClient,
        unpairedServer: $0.unpairedServer)
    }
  }
}
