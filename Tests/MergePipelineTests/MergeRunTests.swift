import Alignment
import CaptureFiles
import Foundation
import SMCSynthesis
import SMCWire
import TestSupport
import Testing

@testable import MergePipeline

@Suite struct MergeRunOutputs {
  @Test func writesEveryOutputAndAReportWithTheFindings() throws {
    let dir = try TemporaryDirectory()
    let scenarios: [Scenario] = [.smcR(version: 2), .decline(code: 0x0303_0002, version: 1)]
    try writeCapture(scenarios, side: .client, to: dir.file("c.pcapng"))
    try writeCapture(scenarios, side: .server, to: dir.file("s.pcapng"))
    let result = try MergeRun.run(
      client: dir.file("c.pcapng"), server: dir.file("s.pcapng"), out: dir.file("out"))
    #expect(result.aligned)
    #expect(result.findings.map(\.kind) == [.declined])
    #expect(result.report.contains("- declined: 1"))
    for name in ["alignment.json", "merged.pcapng", "timeline.jsonl", "timeline.html", "report.md"] {
      #expect(FileManager.default.fileExists(atPath: dir.file("out/\(name)")), "\(name) missing")
    }
    let html = try String(contentsOfFile: dir.file("out/timeline.html"), encoding: .utf8)
    #expect(html.contains(#""findings":[{"kind":"declined","side":"#))
    #expect(html.contains(#"data-count=""#), "the paired events are in the page")
  }

  @Test func refusesOneCaptureGivenTwice() throws {
    let dir = try TemporaryDirectory()
    try writeCapture([.smcR(version: 1)], side: .client, to: dir.file("c.pcapng"))
    #expect(throws: MergeRun.Refusal.self) {
      try MergeRun.run(client: dir.file("c.pcapng"), server: dir.file("c.pcapng"), out: dir.file("out"))
    }
    #expect(!FileManager.default.fileExists(atPath: dir.file("out")))
  }

  @Test func pcapngAloneIsPairedWithinTheWindowWithoutFindings() throws {
    let dir = try TemporaryDirectory()
    let scenarios: [Scenario] = [.smcD(version: 1), .peerNoSMC]
    try writeCapture(scenarios, side: .client, to: dir.file("c.pcapng"))
    try writeCapture(scenarios, side: .server, to: dir.file("s.pcapng"))
    let result = try MergeRun.run(
      client: dir.file("c.pcapng"), server: dir.file("s.pcapng"), out: dir.file("out"), formats: .pcapng)
    #expect(result.alignment.window != nil)
    #expect(result.findings.isEmpty)
    #expect(FileManager.default.fileExists(atPath: dir.file("out/merged.pcapng")))
    #expect(!FileManager.default.fileExists(atPath: dir.file("out/timeline.jsonl")))
  }
}

@Suite struct DelaySummaries {
  @Test func theHistogramMedianIsWithinOnePercentAndTheEndsExact() {
    let delays: [Int64] = (0..<10_001).map { 20_000 + Int64($0) * 7 }
    var histogram = DelayHistogram(clientToServer: true)
    for delay in delays.reversed() { histogram.add(delay) }
    let exact = DelaySummary.exact(delays, clientToServer: true)
    let approximate = histogram.summary()
    #expect(exact?.median == 55_000)
    #expect(approximate?.minimum == 20_000)
    #expect(approximate?.maximum == 90_000)
    #expect(approximate?.count == 10_001)
    #expect(approximate?.medianApproximate == true)
    if let median = approximate?.median { #expect(abs(Double(median) - 55_000) <= 550) }
  }

  @Test func noDelaysNoSummary() {
    #expect(DelaySummary.exact([], clientToServer: false) == nil)
    #expect(DelayHistogram(clientToServer: false).summary() == nil)
  }
}
