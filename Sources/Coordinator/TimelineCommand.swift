import Alignment
import ArgumentParser
import Foundation
import MergePipeline
import Support

/// `smcpair timeline DIR`: the ladder of a merge in the terminal.
struct TimelineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "timeline",
    abstract: "Show the two-sided ladder of a merge (its timeline.jsonl) in the terminal.",
    discussion: """
      One line per paired message, on the reference clock: who sent it, the arrow, what it was, and \
      its one-way delay; findings are shown where they happen. Paged through $PAGER (or less) on a \
      terminal.

      Examples:
        smcpair timeline merged/
        smcpair timeline merged/ --layer cdc --connection :41000
      """)

  @Argument(help: "Folder written by 'smcpair merge'.") var directory: String
  @Option(help: "Only messages whose endpoints contain this text (e.g. a port ':41000').") var connection:
    String?
  @Option(help: "Only this layer: tcp, clc, cdc or data.") var layer: String?
  @Flag(help: "Do not page.") var noPager = false

  func validate() throws {
    if let layer, PairKind(rawValue: layer) == nil {
      throw ValidationError("--layer is tcp, clc, cdc or data")
    }
  }

  func run() throws {
    let path = directory + "/timeline.jsonl"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      let merged = FileManager.default.fileExists(atPath: directory + "/alignment.json")
      writeStandardError(
        merged
          ? "smcpair timeline: \(directory) was merged without timeline.jsonl (--formats without jsonl); run 'smcpair merge ... --out \(directory) --formats jsonl' (or with the default formats)\n"
          : "smcpair timeline: cannot read \(path); run 'smcpair merge ... --out \(directory)' first\n")
      throw ExitCode(1)
    }
    // The hosts' names; an alignment.json this smcpair cannot read leaves the roles' names.
    var names = PerSide(client: Side.client.rawValue, server: Side.server.rawValue)
    if let alignment = try? RecordCoding.read(AlignmentRecord.self, path: directory + "/alignment.json") {
      names = PerSide(client: alignment.clientName, server: alignment.serverName)
    }
    let records: [TimelineRecord]
    do {
      records = try Self.records(text, path: path)
    } catch {
      writeStandardError("smcpair timeline: \(error)\n")
      throw ExitCode(1)
    }
    var out: [String] = []
    let width = 44
    out.append(
      "time (ms)      " + names.client.padding(toLength: 10, withPad: " ", startingAt: 0)
        + String(repeating: " ", count: width - 10) + names.server + "   delay")
    // Everything on one axis, sorted by send time (findings by their time).
    var entries: [(Int64, Int, String)] = []
    let start =
      records.compactMap { record -> Int64? in
        if case .pair(let pair) = record { return pair.sendNanoseconds }
        return nil
      }.min() ?? 0
    for (order, record) in records.enumerated() {
      switch record {
      case .header:
        continue
      case .finding(let finding):
        guard let time = finding.timeNanoseconds else { continue }
        entries.append(
          (
            time, order,
            String(format: "%12.6f   ", Double(time &- start) / 1e6)
              + "!! \(finding.finding.rawValue): \(finding.message)"
          ))
      case .pair(let pair):
        guard let line = ladderLine(pair, start: start, width: width) else { continue }
        entries.append((pair.sendNanoseconds, order, line))
      }
    }
    out += entries.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.map(\.2)
    let textOut = out.joined(separator: "\n") + "\n"
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

  /// One paired message as an arrow between the two columns, or nil when the filters leave
  /// it out.
  func ladderLine(_ pair: TimelinePair, start: Int64, width: Int) -> String? {
    if let layer, pair.kind != PairKind(rawValue: layer) { return nil }
    if let connection, !pair.src.contains(connection) && !pair.dst.contains(connection) { return nil }
    let label =
      " \(pair.kind.rawValue) \(pair.src.split(separator: ":").last ?? "")>\(pair.dst.split(separator: ":").last ?? "") "
    let body = label.count < width - 4 ? label : String(label.prefix(width - 4))
    let dashes = String(repeating: "-", count: max(0, width - 3 - body.count))
    let arrow = pair.direction == .clientToServer ? "|-" + body + dashes + ">|" : "|<" + dashes + body + "-|"
    return String(format: "%12.6f   ", Double(pair.sendNanoseconds &- start) / 1e6) + arrow
      + String(format: "  %.1f us", Double(pair.receiveNanoseconds &- pair.sendNanoseconds) / 1000)
  }
}
