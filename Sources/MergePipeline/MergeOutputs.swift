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
    let paths = PerSide(client: client, server: server)
    let clock = MergedClock(alignment: a, reference: reference)
    let names = PerSide(client: clientName, server: serverName)
    // First within a bounded window; a capture more out of time order than that is measured
    // and written again with a window that covers it: merged.pcapng is never left unsorted.
    var windows = PerSide(repeating: MergedClock.window)
    guard
      let late = try writeMergedOnce(
        a, paths: paths, names: names, clock: clock, windows: windows, to: path, notes: &notes)
    else { return }
    for side in Side.allCases {
      let covering = try TimeOrderedPackets.Window.covering(path: paths[side]) { clock.time($0, side: side) }
      windows[side] = TimeOrderedPackets.Window(
        nanoseconds: max(covering.nanoseconds, MergedClock.window.nanoseconds), packets: .max)
    }
    try notes.rewind()
    if let still = try writeMergedOnce(
      a, paths: paths, names: names, clock: clock, windows: windows, to: path, notes: &notes)
    {
      throw CaptureFileError(
        .corrupt,
        "frame \(still.frame) is out of time order beyond the window measured for it (first seen at frame \(late.frame)): the file changed while it was merged; merge it again once nothing writes it",
        path: paths[still.side])
    }
  }

  /// A packet that came later than its side's reorder window allowed.
  struct LatePacket {
    var side: Side
    var frame: Int
  }

  /// Writes merged.pcapng with each side put in aligned-time order within `windows`; returns
  /// the first packet later than its window (nothing is left at `path` then), nil when written.
  static func writeMergedOnce(
    _ a: Alignment, paths: PerSide<String>, names: PerSide<String>, clock: MergedClock,
    windows: PerSide<TimeOrderedPackets.Window>, to path: String, notes: inout some PairNotes
  ) throws(CaptureFileError) -> LatePacket? {
    // Written under a temporary name, renamed when complete: a merge killed midway leaves no
    // merged.pcapng that looks whole.
    let staged = StagedFile(finalPath: path)
    let writer = try PcapngWriter(
      path: staged.temporaryPath, application: "smcpair merge", os: nil,
      comment: clockComment(a, clock: clock),
      mode: 0o600)
    // Each side is read on its own thread, ahead of the writer, in file order (the pairing
    // notes are in frame order), then put in aligned-time order by its reorder queue.
    var feeds = try PerSide.each { side throws(CaptureFileError) in
      try SideFeed(path: paths[side], side: side, order: .fileOrder)
    }
    var queues = PerSide.each { side in ReorderQueue<NotedPacket>(window: windows[side]) }
    var ended = PerSide(repeating: false)
    var interfaces = MergedInterfaces(names: names)
    var head = PerSide<(time: Int64, element: NotedPacket)?>(repeating: nil)
    var lateFrame = 0
    /// The next packet of `side` in aligned-time order into `head`; false when one came
    /// later than the window.
    func advance(_ side: Side) throws(CaptureFileError) -> Bool {
      while true {
        if let released = queues[side].pop(draining: ended[side]) {
          head[side] = released
          return true
        }
        guard !ended[side], let item = try feeds[side].next() else {
          ended[side] = true
          if queues[side].isEmpty {
            head[side] = nil
            return true
          }
          continue
        }
        let packet = item.packet
        let note = try notes.note(
          side: side, packet: packet, linkType: feeds[side].interfaces[packet.interface].linkType)
        queues[side].push(NotedPacket(packet: packet, note: note), time: clock.time(packet, side: side))
        if queues[side].lateArrivals > 0 {
          lateFrame = packet.frame
          return false
        }
      }
    }
    func abandon(_ side: Side) -> LatePacket {
      try? writer.close()
      staged.discard()
      return LatePacket(side: side, frame: lateFrame)
    }
    for side in Side.allCases {
      guard try advance(side) else { return abandon(side) }
    }
    var comment = PairComment()
    var released = PerSide(repeating: 0)
    while head.client != nil || head.server != nil {
      let side: Side =
        head.client != nil && (head.server == nil || head.client?.time ?? .max <= head.server?.time ?? .max)
        ? .client : .server
      guard let (time, noted) = head[side] else { break }
      let packet = noted.packet
      let id: Int
      if let known = interfaces.known(side: side, local: packet.interface) {
        id = known
      } else {
        id = try interfaces.add(
          side: side, local: packet.interface, feeds[side].interfaces[packet.interface], to: writer)
      }
      try write(packet, noted.note, interface: id, time: time, to: writer, comment: &comment)
      // The queue holds packets after the reader released their pages, so writing them
      // faults pages back in: released again behind the writer, or memory grows with the file.
      if packet.fileOffset - released[side] >= MergedClock.releaseStep {
        feeds[side].releasePages(from: released[side], to: packet.fileOffset - MergedClock.releaseStep / 2)
        released[side] = packet.fileOffset - MergedClock.releaseStep / 2
      }
      guard try advance(side) else { return abandon(side) }
    }
    try interfaces.finish(
      PerSide(client: feeds.client.interfaces, server: feeds.server.interfaces), clock: clock, to: writer)
    try writer.close()
    try staged.commit()
    return nil
  }

  /// The clock model as merged.pcapng's section comment (`shb_comment`).
  static func clockComment(_ a: Alignment, clock: MergedClock) -> String {
    let m = a.model
    var text =
      "smcpair clock model: server = client + \(Int64(clampingRounded: m.offsetNanoseconds)) ns (bounds \(m.offsetLower)..\(m.offsetUpper) ns), skew \(m.skewPPM) ppm, at client time \(m.referenceNanoseconds) ns; verdict \(a.verdict.rawValue); timestamps on the \(clock.reference.rawValue) clock"
    if a.segments.count > 1 { text += "; \(a.segments.count) segments (clock steps): see alignment.json" }
    return text
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

/// merged.pcapng's interfaces: one per side and capture interface, added as they first
/// appear. Each keeps its name as `<host>:<ifname>`, says its side and role in its description
/// (`client h1: NIC`), and keeps its filter, OS and, at the end, its capture statistics.
struct MergedInterfaces {
  /// The client's and the server's host names.
  let names: PerSide<String>
  /// Per side: the merged interface id of each of the capture's interfaces (-1: not yet).
  private var ids = PerSide<[Int]>(repeating: [])

  init(names: PerSide<String>) { self.names = names }

  func known(side: Side, local: Int) -> Int? {
    local < ids[side].count && ids[side][local] >= 0 ? ids[side][local] : nil
  }

  /// The merged interface of a capture's interface, as merged.pcapng's IDB describes it.
  func description(side: Side, local: Int, _ interface: CaptureInterface) -> InterfaceDescription {
    let ifname = interface.name ?? "if\(local)"
    // The side first: Wireshark shows `frame.interface_description`, and smcpair.lua reads
    // the side from it.
    return InterfaceDescription(
      name: "\(names[side]):\(ifname)",
      description: "\(side.rawValue) \(names[side]): \(interface.description ?? ifname)",
      linkType: interface.linkType, snapLength: interface.snapLength, filter: interface.filter,
      os: interface.os)
  }

  mutating func add(side: Side, local: Int, _ interface: CaptureInterface, to writer: PcapngWriter)
    throws(CaptureFileError) -> Int
  {
    while ids[side].count <= local { ids[side].append(-1) }
    let id = try writer.addInterface(description(side: side, local: local, interface))
    ids[side][local] = id
    return id
  }

  /// After the last packet: the interfaces no packet used (their statistics still count),
  /// then an ISB per interface whose capture had one, times on the merged clock.
  mutating func finish(_ captured: PerSide<[CaptureInterface]>, clock: MergedClock, to writer: PcapngWriter)
    throws(CaptureFileError)
  {
    for side in Side.allCases {
      for (local, interface) in captured[side].enumerated() where known(side: side, local: local) == nil {
        _ = try add(side: side, local: local, interface, to: writer)
      }
    }
    for side in Side.allCases {
      for (local, interface) in captured[side].enumerated() {
        guard let stats = interface.statistics, let id = known(side: side, local: local) else { continue }
        try writer.writeStatistics(
          interface: id, timestampNanoseconds: clock.time(stats.timestampNanoseconds, side: side),
          startNanoseconds: stats.startNanoseconds.map { clock.time($0, side: side) },
          endNanoseconds: stats.endNanoseconds.map { clock.time($0, side: side) }, received: stats.received,
          dropped: stats.interfaceDropped, filterAccepted: stats.filterAccepted, osDropped: stats.osDropped,
          delivered: stats.delivered)
      }
    }
  }
}

/// Maps each side's capture times onto merged.pcapng's clock (the reference side's).
struct MergedClock {
  let alignment: Alignment
  let reference: Side

  /// How far merged.pcapng waits for a side's late packets before it measures the capture
  /// and writes again with a window that covers it. Fewer packets than the pairing walk's
  /// window: memory stays small, and a wider disorder costs one more read, not a wrong file.
  static let window = TimeOrderedPackets.Window(nanoseconds: 2_000_000_000, packets: 65_536)
  /// Bytes of a capture the writer passes before it drops the pages behind it.
  static let releaseStep = 8 << 20

  init(alignment: Alignment, reference: Side) {
    self.alignment = alignment
    self.reference = reference
  }

  func time(_ packet: CapturedPacket, side: Side) -> Int64 { time(packet.timestampNanoseconds, side: side) }

  func time(_ nanoseconds: Int64, side: Side) -> Int64 {
    guard side != reference else { return nanoseconds }
    return reference == .server
      ? alignment.serverTime(atClient: nanoseconds) : alignment.clientTime(atServer: nanoseconds)
  }
}

/// A packet waiting in a side's reorder queue with what merged.pcapng says about it.
struct NotedPacket {
  var packet: CapturedPacket
  var note: PacketNote
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
  /// Back to the first frame of each side, counts cleared (merged.pcapng is written again).
  mutating func rewind() throws(CaptureFileError)
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

  func rewind() {}

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
  var readers: PerSide<PairLogReader>
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

  mutating func rewind() throws(CaptureFileError) {
    readers = try logs.paths.map { path throws(CaptureFileError) in try PairLogReader(path: path) }
    causalityViolations = 0
    delays = [DelayHistogram(clientToServer: true), DelayHistogram(clientToServer: false)]
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
