import Alignment
import ArgumentParser
import Foundation
import MergePipeline
import Rendering
import Support

/// `smcpair timeline DIR|FILE`: the ladder of a merge in the terminal.
struct TimelineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "timeline",
    abstract: "Show the two-sided ladder of a merge (its timeline.jsonl) in the terminal.",
    discussion: """
      One row per paired message, on the reference clock: its time (from the first event, or UTC \
      with --absolute), its connection (numbered; the legend on top says which endpoints), an arrow \
      from the side that sent it labelled with what it is (TCP flags and relative Seq/Ack, CLC type, \
      version and path, CDC seqno and cursors, the cursor range of a data record), and its one-way \
      delay. Findings (lost CDCs, declines, retransmissions, delay outliers, drops) are shown at their \
      time with the side whose capture shows them. The arrow's label uses the terminal's width \
      ($COLUMNS on a pipe). Paged through $PAGER (or less) on a terminal.

      Examples:
        smcpair timeline merged/                          # the whole conversation
        smcpair timeline merged/timeline.jsonl --no-pager # the file itself, not paged
        smcpair timeline merged/ --layer clc,cdc          # the SMC handshake and CDC messages
        smcpair timeline merged/ --layer CDC --connection :41000
        smcpair timeline merged/ --absolute               # UTC wall time instead of +seconds
      """)

  @Argument(help: "Folder written by 'smcpair merge', or its timeline.jsonl.") var path: String
  @Option(help: "Only messages and findings whose connection contains this text (e.g. a port ':41000').")
  var connection: String?
  @Option(help: "Only these layers (and their findings): tcp, clc, cdc, data; several with commas.")
  var layer: String?
  @Flag(help: "Show UTC wall time instead of the time since the first event.") var absolute = false
  @Flag(help: "Do not page.") var noPager = false

  func validate() throws {
    if let layer, TimelineLadder.layers(layer) == nil {
      throw ValidationError(
        "--layer takes tcp, clc, cdc or data (several with commas, any case); got '\(layer)'")
    }
  }

  func run() throws {
    let (folder, file) = TimelineLadder.locate(path)
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
      let merged = FileManager.default.fileExists(atPath: folder + "/alignment.json")
      writeStandardError(
        merged
          ? "smcpair timeline: \(folder) was merged without timeline.jsonl (--formats without jsonl); run 'smcpair merge ... --out \(folder) --formats jsonl' (or with the default formats)\n"
          : "smcpair timeline: cannot read \(file); run 'smcpair merge ... --out \(folder)' first\n")
      throw ExitCode(1)
    }
    // The hosts' names; an alignment.json this smcpair cannot read leaves the roles' names.
    var names = PerSide(client: Side.client.rawValue, server: Side.server.rawValue)
    if let alignment = try? RecordCoding.read(AlignmentRecord.self, path: folder + "/alignment.json") {
      names = PerSide(client: alignment.clientName, server: alignment.serverName)
    }
    let records: [TimelineRecord]
    do {
      records = try Self.records(text, path: file)
    } catch {
      writeStandardError("smcpair timeline: \(error)\n")
      throw ExitCode(1)
    }
    var ladder = TimelineLadder(names: names, width: Self.terminalWidth())
    ladder.absolute = absolute
    ladder.connection = connection
    ladder.layers = layer.flatMap(TimelineLadder.layers)
    let textOut = ladder.render(records).joined(separator: "\n") + "\n"
    if !noPager && isatty(1) == 1,
      let pager = ProcessInfo.processInfo.environment["PAGER"] ?? Optional("less")
    {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
      process.arguments = pager == "less" ? ["less", "-S"] : [pager]
      let pipe = Pipe()
      process.standardInput = pipe
      if (try? process.run()) != nil {
        pipe.fileHandleForWriting.write(Data(textOut.utf8))
        try? pipe.fileHandleForWriting.close()
        process.waitUntilExit()
        return
      }
    }
    print(textOut, terminator: "")
  }

  /// The records of timeline.jsonl (`path`), line by line; a line that is not one says which
  /// line and field.
  static func records(_ text: String, path: String) throws(RecordError) -> [TimelineRecord] {
    var records: [TimelineRecord] = []
    for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
    where !line.isEmpty {
      records.append(try TimelineRecord.read(line, path: path, line: index + 1))
    }
    return records
  }

  /// The terminal's columns: the terminal's own, else `$COLUMNS`, else 120.
  static func terminalWidth() -> Int {
    var size = winsize()
    if isatty(1) == 1, ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
    if let columns = ProcessInfo.processInfo.environment["COLUMNS"].flatMap(Int.init), columns > 0 {
      return columns
    }
    return 120
  }
}

/// The rows of the terminal ladder: a legend of the connections, a header, then paired messages
/// and findings in time order, each filtered by connection text and layer.
struct TimelineLadder {
  var names: PerSide<String>
  /// Columns of the whole row.
  var width: Int
  var absolute = false
  var connection: String?
  /// Nil: every layer.
  var layers: Set<PairKind>?

  static let timeWidth = 12
  static let absoluteTimeWidth = 18
  static let connectionWidth = 4
  static let delayWidth = 12
  /// The narrowest arrow that still says something.
  static let minimumArrow = 30

  init(names: PerSide<String>, width: Int) {
    self.names = names
    self.width = width
  }

  /// The folder and timeline.jsonl of `path`, which names either.
  static func locate(_ path: String) -> (folder: String, file: String) {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
      return (parentFolder(of: path), path)
    }
    let folder = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    return (folder, folder + "/timeline.jsonl")
  }

  /// The layers of a `--layer` value (`cdc`, `CDC`, `clc,cdc`), nil when one is not a layer.
  static func layers(_ text: String) -> Set<PairKind>? {
    var result: Set<PairKind> = []
    for part in text.split(separator: ",") {
      let name = part.trimmingCharacters(in: .whitespaces).lowercased()
      guard let kind = PairKind(rawValue: name) else { return nil }
      result.insert(kind)
    }
    return result.isEmpty ? nil : result
  }

  /// The layer a finding belongs to; nil for what concerns every layer (capture drops, delays).
  static func layer(of finding: Finding.Kind) -> PairKind? {
    switch finding {
    case .cdcNotReceived, .cdcNotSent, .seqnoGap, .seqnoDuplicate, .cursorRegression: .cdc
    case .declined, .fallback: .clc
    case .tcpRetransmission: .tcp
    case .delayOutlier, .captureDrops: nil
    }
  }

  /// The client's and the server's endpoint of a pair: its connection, as findings name it.
  static func endpoints(_ pair: TimelinePair) -> (client: String, server: String) {
    pair.direction == .clientToServer ? (pair.src, pair.dst) : (pair.dst, pair.src)
  }

  func keeps(_ pair: TimelinePair) -> Bool {
    if let layers, !layers.contains(pair.kind) { return false }
    if let connection, !pair.src.contains(connection) && !pair.dst.contains(connection) { return false }
    return true
  }

  func keeps(_ finding: TimelineFinding) -> Bool {
    if let layers, let layer = Self.layer(of: finding.finding), !layers.contains(layer) { return false }
    if let connection, !finding.connection.contains(connection) { return false }
    return true
  }

  /// Every row, legend and header first.
  func render(_ records: [TimelineRecord]) -> [String] {
    let pairs = records.compactMap { record -> TimelinePair? in
      if case .pair(let pair) = record, keeps(pair) { return pair }
      return nil
    }
    let findings = records.compactMap { record -> TimelineFinding? in
      if case .finding(let finding) = record, keeps(finding) { return finding }
      return nil
    }
    // Time counts from the first message of the whole timeline, filtered or not.
    let start =
      records.compactMap { record -> Int64? in
        if case .pair(let pair) = record { return pair.sendNanoseconds }
        return nil
      }.min() ?? findings.compactMap(\.timeNanoseconds).min() ?? 0
    // Connections numbered as they first appear.
    var numbers: [String: Int] = [:]
    var legend: [String] = []
    for pair in pairs.sorted(by: { $0.sendNanoseconds < $1.sendNanoseconds }) {
      let (client, server) = Self.endpoints(pair)
      let key = client + " <-> " + server
      if numbers[key] == nil {
        numbers[key] = numbers.count + 1
        legend.append("  #\(numbers.count)  \(names.client) \(client)  <->  \(names.server) \(server)")
      }
    }
    var rows: [String] = []
    if !legend.isEmpty { rows = ["connections:"] + legend + [""] }
    let timeWidth = absolute ? Self.absoluteTimeWidth : Self.timeWidth
    let arrowWidth = max(Self.minimumArrow, width - timeWidth - Self.connectionWidth - Self.delayWidth - 4)
    let clientName = names.client.padding(toLength: arrowWidth / 2, withPad: " ", startingAt: 0)
    rows.append(
      pad(absolute ? "time (UTC)" : "time (s)", timeWidth) + " " + pad("conn", Self.connectionWidth) + " "
        + clientName + pad(names.server, arrowWidth - arrowWidth / 2) + "  delay")
    // Everything on one axis: pairs by send time, findings by their time, each in file order on ties.
    var entries: [(time: Int64, order: Int, text: String)] = []
    for (order, pair) in pairs.enumerated() {
      let (client, server) = Self.endpoints(pair)
      let number = numbers[client + " <-> " + server].map { "#\($0)" } ?? ""
      entries.append(
        (
          pair.sendNanoseconds, order,
          timeText(pair.sendNanoseconds, start: start) + " " + pad(number, Self.connectionWidth) + " "
            + arrow(pair, width: arrowWidth) + "  " + Self.delayText(pair.delayNanoseconds)
        ))
    }
    for (order, finding) in findings.enumerated() {
      guard let time = finding.timeNanoseconds else { continue }
      entries.append(
        (
          time, pairs.count + order,
          timeText(time, start: start) + " " + pad("", Self.connectionWidth)
            + " !! \(finding.finding.rawValue)"
            + " (\(finding.side.name)) \(finding.connection): \(finding.message)"
        ))
    }
    rows += entries.sorted { ($0.time, $0.order) < ($1.time, $1.order) }.map(\.text)
    let untimed = findings.filter { $0.timeNanoseconds == nil }
    if !untimed.isEmpty {
      rows.append("")
      rows += untimed.map {
        "!! \($0.finding.rawValue) (\($0.side.name)) \($0.connection): \($0.message)"
      }
    }
    return rows
  }

  /// The label of a pair: its description's, else its kind and ports (files before descriptions).
  static func label(_ pair: TimelinePair) -> String {
    if let event = pair.event { return event.label }
    let port = { (endpoint: String) in endpoint.split(separator: ":").last.map(String.init) ?? "" }
    return "\(pair.kind.rawValue) \(port(pair.src))>\(port(pair.dst))"
  }

  /// The pair as an arrow `width` columns wide, from the sender's column to the receiver's,
  /// its label inside (cut with `…` when it does not fit).
  func arrow(_ pair: TimelinePair, width: Int) -> String {
    var label = " " + Self.label(pair) + " "
    let room = width - 4
    if label.count > room { label = String(label.prefix(room - 2)) + "… " }
    let dashes = String(repeating: "-", count: max(0, width - 3 - label.count))
    return pair.direction == .clientToServer ? "|-" + label + dashes + ">|" : "|<" + dashes + label + "-|"
  }

  func timeText(_ time: Int64, start: Int64) -> String {
    if absolute {
      var clock: [UInt8] = []
      UTCTime(epochNanoseconds: time).writeTimeOfDay(into: &clock)
      return pad(String(decoding: clock, as: UTF8.self), Self.absoluteTimeWidth)
    }
    let text = String(format: "+%.6f", Double(time &- start) / 1e9)
    return String(repeating: " ", count: max(0, Self.timeWidth - text.count)) + text
  }

  static func delayText(_ nanoseconds: Int64) -> String {
    let magnitude = abs(nanoseconds)
    if magnitude >= 1_000_000_000 { return String(format: "%.3f s", Double(nanoseconds) / 1e9) }
    if magnitude >= 1_000_000 { return String(format: "%.3f ms", Double(nanoseconds) / 1e6) }
    return String(format: "%.1f us", Double(nanoseconds) / 1e3)
  }

  func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
  }
}
