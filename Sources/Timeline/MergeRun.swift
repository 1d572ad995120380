import Alignment
import Foundation
import SMCWire

/// The whole of `smcpair merge`: align two captures and write the chosen outputs. Used by
/// `smcpair merge` and by `smcpair capture` after it pulled both sides.
public enum MergeRun {
  public static let allFormats: Set<String> = ["pcapng", "jsonl", "html", "report"]

  public struct Result: Sendable {
    public var alignment: Alignment
    public var findings: [Finding]
    /// report.md's text (also printed by `smcpair merge`).
    public var report: String
  }

  /// Aligns `client` and `server` and writes alignment.json plus `formats` into `out`.
  public static func run(
    client: String, server: String, out: String, clientName: String = "client", serverName: String = "server",
    formats: Set<String> = allFormats, referenceIsServer: Bool = false, clientAddresses: Set<IPAddress> = [],
    probe: ClockProbe? = nil
  ) throws -> Result {
    let alignment = try Aligner.align(
      client: client, server: server, clientAddresses: clientAddresses, probe: probe)
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let json = MergeOutputs.alignmentJSON(
      alignment, client: client, server: server, clientName: clientName, serverName: serverName)
    try json.write(toFile: out + "/alignment.json", atomically: true, encoding: .utf8)
    if formats.contains("pcapng") {
      try MergeOutputs.writeMergedPcapng(
        alignment, client: client, server: server, clientName: clientName, serverName: serverName,
        to: out + "/merged.pcapng", referenceIsServer: referenceIsServer)
    }
    // Findings read both captures again; only the outputs that show them need them.
    var findings: [Finding] = []
    if !formats.isDisjoint(with: ["jsonl", "html", "report"]) {
      findings = try FindingsBuilder.build(alignment, client: client, server: server)
    }
    if formats.contains("jsonl") {
      try (timelineLines(alignment) + findingLines(findings)).write(
        toFile: out + "/timeline.jsonl", atomically: true, encoding: .utf8)
    }
    if formats.contains("html") {
      try TimelineHTML.render(alignment, findings: findings, clientName: clientName, serverName: serverName)
        .write(toFile: out + "/timeline.html", atomically: true, encoding: .utf8)
    }
    let report = reportText(alignment, findings: findings, client: client, server: server)
    if formats.contains("report") {
      try report.write(toFile: out + "/report.md", atomically: true, encoding: .utf8)
    }
    return Result(alignment: alignment, findings: findings, report: report)
  }

  /// One paired message per line, times on the reference clock.
  static func timelineLines(_ a: Alignment) -> String {
    var lines: [String] = []
    let halfWidth = (a.model.offsetUpper - a.model.offsetLower) / 2
    for pair in a.pairs {
      let serverOnClient = a.clientTime(atServer: pair.server.timeNanoseconds)
      let send = pair.clientToServer ? pair.client.timeNanoseconds : serverOnClient
      let receive = pair.clientToServer ? serverOnClient : pair.client.timeNanoseconds
      var fields: [String: Any] = [
        "kind": pair.kind.rawValue, "direction": pair.clientToServer ? "client->server" : "server->client",
        "src": pair.client.source.description, "dst": pair.client.destination.description,
        "send_ns": send, "receive_ns": receive, "delay_ns": receive &- send,
        "client_frame": pair.client.frame,
        "server_frame": pair.server.frame,
      ]
      if halfWidth.isFinite { fields["delay_uncertainty_ns"] = Int64(clampingRounded: halfWidth) }
      if let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) {
        lines.append(String(decoding: data, as: UTF8.self))
      }
    }
    return lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")
  }

  static func findingLines(_ findings: [Finding]) -> String {
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

  static func reportText(_ a: Alignment, findings: [Finding], client: String, server: String) -> String {
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
              ? serverOnClient &- pair.client.timeNanoseconds : pair.client.timeNanoseconds &- serverOnClient)
        )
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
