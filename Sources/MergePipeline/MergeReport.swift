import Alignment
import CaptureFiles
import Foundation
import SMCWire

/// report.md: the merge's summary and findings and, for a capture, what only the capture
/// knows (a side's capture ending early). Assembled here, written once, staged like the
/// other outputs.
public struct MergeReport: Sendable, Equatable {
  /// The merge's summary: captures, pairs, clock, delays, directions, warnings.
  public var summary: [String]
  /// The "Findings" section's lines ("none" when there are none).
  public var findings: [String]
  /// The "Capture gaps" section's lines (`smcpair capture` only); no section when empty.
  public var captureGaps: [String] = []

  public init(summary: [String], findings: [String], captureGaps: [String] = []) {
    self.summary = summary
    self.findings = findings
    self.captureGaps = captureGaps
  }

  /// The whole report, sections in order.
  public var text: String {
    var lines = summary + ["", "## Findings", ""] + findings
    if !captureGaps.isEmpty { lines += ["", "## Capture gaps", ""] + captureGaps }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Writes `out`/report.md (staged: a reader never sees half of it).
  public func write(into out: String) throws(CaptureFileError) {
    try StagedFile.write(text, to: out + "/report.md")
  }
}

extension MergeReport {
  /// The report of a merge: `thresholds` are the delay outlier limits the findings used.
  init(
    _ a: Alignment, findings: [Finding], delays: [DelaySummary], thresholds: [OutlierThreshold] = [],
    client: String, server: String
  ) {
    self.init(
      summary: MergeReport.summary(a, delays: delays, thresholds: thresholds, client: client, server: server),
      findings: MergeReport.findingLines(findings))
  }

  static func summary(
    _ a: Alignment, delays: [DelaySummary], thresholds: [OutlierThreshold], client: String, server: String
  ) -> [String] {
    func us(_ ns: Double) -> String { ns.isFinite ? String(format: "%.1f us", ns / 1000) : "unbounded" }
    var lines = [
      "# smcpair merge", "",
      "client: \(client) (\(a.clientPackets) packets), server: \(server) (\(a.serverPackets) packets)",
      "pairs: "
        + PairKind.allCases.map { "\($0.rawValue) \(a.pairsByKind[$0, default: 0])" }.joined(separator: ", "),
      "clock: server = client \(String(format: "%+.0f", a.model.offsetNanoseconds)) ns (bounds \(us(a.model.offsetLower - a.model.offsetNanoseconds)) .. \(a.model.offsetUpper.isFinite ? "+" : "")\(us(a.model.offsetUpper - a.model.offsetNanoseconds))), skew \(String(format: "%+.3f", a.model.skewPPM)) ppm, verdict \(a.verdict.rawValue)",
      "causality violations after alignment: \(a.causalityViolations)",
    ]
    if a.segments.count > 1 {
      for (index, segment) in a.segments.enumerated() {
        lines.append(
          "  segment \(index + 1): \(segment.pairs) pairs, offset \(String(format: "%+.0f", segment.model.offsetNanoseconds)) ns"
        )
      }
    }
    for summary in delays {
      lines.append(
        "one-way delay \(summary.clientToServer ? "client->server" : "server->client"): min \(us(Double(summary.minimum))), median \(summary.medianApproximate ? "~" : "")\(us(Double(summary.median))), max \(us(Double(summary.maximum))) (\(summary.count) pairs)"
      )
    }
    if let window = a.window {
      lines.append(
        "paired within a \(String(format: "%g", Double(window.windowNanoseconds) / 1e9)) s window: at most \(window.mostWaiting) packets waiting; without a copy on the other side: client \(window.unpairedClient), server \(window.unpairedServer)"
      )
    }
    for decision in a.hosts.decisions { lines.append("direction: \(decision.explanation)") }
    for address in a.hosts.unusedGiven {
      lines.append("warning: --client-address \(address) is in no packet both captures share: not used")
    }
    if !a.aligned {
      lines.append(
        a.verdict == .cannotTell
          ? "verdict: cannot tell: the captures share packets, but nothing tells which side sent them; no bounds are given"
          : "verdict: not aligned: the two captures share no packet (are they of the same conversation?)")
    }
    if !thresholds.isEmpty {
      lines.append(
        "delay outliers: above median + max(\(OutlierThreshold.factor) MAD, \(OutlierThreshold.floorNanoseconds / 1000) us), per kind and direction:"
      )
      for threshold in thresholds { lines.append("  \(threshold.text)") }
    }
    for warning in a.warnings { lines.append("warning: \(warning)") }
    return lines
  }

  static func findingLines(_ findings: [Finding]) -> [String] {
    var lines: [String] = []
    if findings.isEmpty { lines.append("none") }
    var byKind: [Finding.Kind: [Finding]] = [:]
    for finding in findings { byKind[finding.kind, default: []].append(finding) }
    for kind in Finding.Kind.allCases {
      guard let list = byKind[kind] else { continue }
      lines.append("- \(kind.rawValue): \(list.count)")
      for finding in list.prefix(5) {
        let seen =
          switch finding.side {
          case .both: "seen on both sides"
          case .side(let side): "in the \(side.rawValue)'s capture"
          }
        lines.append("  - \(seen), \(finding.connection): \(finding.message)")
      }
      if list.count > 5 { lines.append("  - ... \(list.count - 5) more in timeline.jsonl") }
    }
    return lines
  }
}
