import ArgumentParser
import Foundation
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
    if let layer, !["tcp", "clc", "cdc", "data"].contains(layer) {
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
    var names = ("client", "server")
    if let data = FileManager.default.contents(atPath: directory + "/alignment.json"),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    {
      names = (object["client_name"] as? String ?? "client", object["server_name"] as? String ?? "server")
    }
    var out: [String] = []
    let width = 44
    out.append(
      "time (ms)      " + names.0.padding(toLength: 10, withPad: " ", startingAt: 0)
        + String(repeating: " ", count: width - 10) + names.1 + "   delay")
    // Everything on one axis, sorted by send time (findings by their time).
    var entries: [(Int64, Int, String)] = []
    var order = 0
    var records: [[String: Any]] = []
    for line in text.split(separator: "\n") {
      if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
        records.append(object)
      }
    }
    let start = records.compactMap { ($0["send_ns"] as? NSNumber)?.int64Value }.min() ?? 0
    for object in records {
      order += 1
      if let finding = object["finding"] as? String {
        guard let time = (object["time_ns"] as? NSNumber)?.int64Value else { continue }
        entries.append(
          (
            time, order,
            String(format: "%12.6f   ", Double(time &- start) / 1e6)
              + "!! \(finding): \(object["message"] as? String ?? "")"
          ))
        continue
      }
      guard let kind = object["kind"] as? String, let send = (object["send_ns"] as? NSNumber)?.int64Value,
        let receive = (object["receive_ns"] as? NSNumber)?.int64Value
      else { continue }
      if let layer, kind != layer { continue }
      let src = object["src"] as? String ?? ""
      let dst = object["dst"] as? String ?? ""
      if let connection, !src.contains(connection) && !dst.contains(connection) { continue }
      let toServer = (object["direction"] as? String) == "client->server"
      let label = " \(kind) \(src.split(separator: ":").last ?? "")>\(dst.split(separator: ":").last ?? "") "
      let body = label.count < width - 4 ? label : String(label.prefix(width - 4))
      let dashes = String(repeating: "-", count: max(0, width - 3 - body.count))
      let arrow = toServer ? "|-" + body + dashes + ">|" : "|<" + dashes + body + "-|"
      entries.append(
        (
          send, order,
          String(format: "%12.6f   ", Double(send &- start) / 1e6) + arrow
            + String(format: "  %.1f us", Double(receive - send) / 1000)
        ))
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
}
