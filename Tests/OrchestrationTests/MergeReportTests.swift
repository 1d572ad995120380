import MergePipeline
import Testing

@Suite struct MergeReportSections {
  let merge = MergeReport(summary: ["# smcpair merge", "", "pairs: clc 2"], findings: ["none"])

  @Test func aMergeHasSummaryThenFindings() {
    #expect(merge.text == "# smcpair merge\n\npairs: clc 2\n\n## Findings\n\nnone\n")
  }

  /// The gaps come last, as they did when the capture appended them to the merge's report.
  @Test func captureGapsComeAfterTheFindings() {
    var report = merge
    report.captureGaps = [
      "- the client (c1) capture ends early: lost", "- server (s1): s1: pulling: refused",
    ]
    let appended = ["", "## Capture gaps", ""] + report.captureGaps
    #expect(report.text == merge.text + appended.joined(separator: "\n") + "\n")
    #expect(
      report.text.hasSuffix(
        "none\n\n## Capture gaps\n\n- the client (c1) capture ends early: lost\n- server (s1): s1: pulling: refused\n"
      ))
  }
}
