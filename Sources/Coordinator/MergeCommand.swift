import Alignment
import ArgumentParser
import CaptureFiles
import Foundation
import SMCWire
import Timeline

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Align the clocks of a client and a server capture and merge them onto one time axis.",
    discussion: """
      Packets seen on both sides (TCP segments, CDC records, data records) bound the clock offset \\
      from both directions; the offset and skew are chosen inside the feasible set, with bounds. \\
      A clock step inside the captures splits the alignment into segments. See docs/alignment.md.

      Writes into --out: alignment.json (always), merged.pcapng (one interface per side and \\
      interface, the same packet id on both copies of a paired packet, delays in comments), \\
      timeline.jsonl (one paired message per line, then the findings), timeline.html (a ladder \
      diagram in one self-contained file), report.md.

      Example:
        smcpair merge client.pcapng server.pcapng --out merged/ --client-name h1 --server-name h2
      """)

  @Argument(help: "The client side's capture (pcap or pcapng).") var client: String
  @Argument(help: "The server side's capture.") var server: String
  @Option(help: "Output folder (created).") var out: String
  @Option(help: "Name of the client host in interface names.") var clientName = "client"
  @Option(help: "Name of the server host in interface names.") var serverName = "server"
  @Option(help: "Outputs: any of pcapng,jsonl,html,report (alignment.json is always written).")
  var formats = "pcapng,jsonl,html,report"
  @Option(help: "Clock the merged timeline uses: client or server.") var reference = "client"
  @Option(help: ArgumentHelp("Address of the client host (default: the SYN senders).", valueName: "ip"))
  var clientAddress: [String] = []

  func validate() throws {
    let known = Set(["pcapng", "jsonl", "report", "html"])
    for format in formats.split(separator: ",") where !known.contains(String(format)) {
      throw ValidationError("unknown format '\(format)'; choose from pcapng, jsonl, html, report")
    }
    guard reference == "client" || reference == "server" else {
      throw ValidationError("--reference is client or server")
    }
    for address in clientAddress where IPAddress(address) == nil {
      throw ValidationError("--client-address '\(address)' is not an IP address")
    }
  }

  func run() throws {
    let addresses = Set(clientAddress.compactMap(IPAddress.init))
    let alignment: Alignment
    do {
      alignment = try Aligner.align(client: client, server: server, clientAddresses: addresses)
    } catch {
      writeStandardError("smcpair merge: \(error.description)\n")
      throw ExitCode(1)
    }
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let json = MergeOutputs.alignmentJSON(
      alignment, client: client, server: server, clientName: clientName, serverName: serverName)
    try json.write(toFile: out + "/alignment.json", atomically: true, encoding: .utf8)
    let chosen = Set(formats.split(separator: ",").map(String.init))
    if chosen.contains("pcapng") {
      do {
        try MergeOutputs.writeMergedPcapng(
          alignment, client: client, server: server, clientName: clientName, serverName: serverName,
          to: out + "/merged.pcapng", referenceIsServer: reference == "server")
      } catch {
        writeStandardError("smcpair merge: \(error.description)\n")
        throw ExitCode(1)
      }
    }
    var findings: [Finding] = []
    do {
      // Findings read both captures again; only the outputs that show them need them.
      if !chosen.isDisjoint(with: ["jsonl", "html", "report"]) {
        findings = try FindingsBuilder.build(alignment, client: client, server: server)
      }
    } catch {
      writeStandardError("smcpair merge: \(error.description)\n")
      throw ExitCode(1)
    }
    if chosen.contains("jsonl") {
      try (timelineLines(alignment) + findingLines(findings)).write(
        toFile: out + "/timeline.jsonl", atomically: true, encoding: .utf8)
    }
    if chosen.contains("html") {
      try TimelineHTML.render(alignment, findings: findings, clientName: clientName, serverName: serverName)
        .write(
          toFile: out + "/timeline.html", atomically: true, encoding: .utf8)
    }
    let report = reportText(alignment, findings: findings)
    if chosen.contains("report") {
      try report.write(toFile: out + "/report.md", atomically: true, encoding: .utf8)
    }
    print(report)
  }

  /// One paired message per line, times on the reference clock.
  func timelineLines(_ a: Alignment) -> String {
    var lines: [String] = []
    let halfWidth = (a.model.offsetUpper - a.model.offsetLower) / 2
    for pair in a.pairs {
      let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
      let send = pair.clientToServer ? pair.client.timeNanoseconds : serverOnClient
      let receive = pair.clientToServer ? serverOnClient : pair.client.timeNanoseconds
      var fields: [String: Any] = [
        "kind": pair.kind.rawValue, "direction": pair.clientToServer ? "client->server" : "server->client",
        "src": pair.client.source.description, "dst": pair.client.destination.description,
        "send_ns": send, "receive_ns": receive, "delay_ns": receive - send, "client_frame": pair.client.frame,
        "server_frame": pair.server.frame,
      ]
      if halfWidth.isFinite { fields["delay_uncertainty_ns"] = Int64(halfWidth.rounded()) }
      if let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) {
        lines.append(String(decoding: data, as: UTF8.self))
      }
    }
    return lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
  }

  func findingLines(_ findings: [Finding]) -> String {
    findings.compactMap { finding -> String? in
      var fields: [String: Any] = [
        "finding": finding.kind.rawValue, "side": finding.side, "connection": finding.connection,
        "message": finding.message,
      ]
      if let time = finding.timeNanoseconds { fields["time_ns"] = time }
      guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else {
        return nil
      }
      return String(decoding: data, as: UTF8.self) + "\n"
    }.joined()
  }

  func reportText(_ a: Alignment, findings: [Finding]) -> String {
    func us(_ ns: Double) -> String { ns.isFinite ? String(format: "%.1f us", ns / 1000) : "unbounded" }
    var lines = [
      "# smcpair merge", "",
      "client: \(client) (\(a.clientPackets) packets), server: \(server) (\(a.serverPackets) packets)",
      "pairs: "
        + PairKind.allCases.map { "\($0.rawValue) \(a.pairsByKind[$0, default: 0])" }.joined(separator: ", "),
      "clock: server = client \(String(format: "%+.0f", a.model.offsetNanoseconds)) ns (bounds \(us(a.model.offsetLower - a.model.offsetNanoseconds)) .. +\(us(a.model.offsetUpper - a.model.offsetNanoseconds))), skew \(String(format: "%+.3f", a.model.skewPPM)) ppm, verdict \(a.verdict.rawValue)",
      "causality violations after alignment: \(a.causalityViolations)",
    ]
    if a.segments.count > 1 {
      for (index, segment) in a.segments.enumerated() {
        lines.append(
          "  segment \(index + 1): \(segment.pairs) pairs, offset \(String(format: "%+.0f", segment.model.offsetNanoseconds)) ns"
        )
      }
    }
    for direction in [true, false] {
      var delays: [Double] = []
      for pair in a.pairs where pair.clientToServer == direction {
        let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
        delays.append(
          Double(
            direction
              ? serverOnClient - pair.client.timeNanoseconds : pair.client.timeNanoseconds - serverOnClient))
      }
      delays.sort()
      if !delays.isEmpty {
        lines.append(
          "one-way delay \(direction ? "client->server" : "server->client"): min \(us(delays[0])), median \(us(delays[delays.count / 2])), max \(us(delays[delays.count - 1])) (\(delays.count) pairs)"
        )
      }
    }
    for warning in a.warnings { lines.append("warning: \(warning)") }
    lines += ["", "## Findings", ""]
    if findings.isEmpty { lines.append("none") }
    var byKind: [Finding.Kind: [Finding]] = [:]
    for finding in findings { byKind[finding.kind, default: []].append(finding) }
    for kind in Finding.Kind.allCases {
      guard let list = byKind[kind] else { continue }
      lines.append("- \(kind.rawValue): \(list.count)")
      for finding in list.prefix(5) {
        lines.append("  - in the \(finding.side)'s capture, \(finding.connection): \(finding.message)")
      }
      if list.count > 5 { lines.append("  - ... \(list.count - 5) more in timeline.jsonl") }
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
