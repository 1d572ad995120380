import Foundation
import TestSupport
import Testing

/// Every input in Tests/FuzzCorpus/TARGET (the seeds, and each crash the fuzzers found, once
/// fixed) runs through its fuzz target built without libFuzzer: none may crash.
@Suite struct FuzzCorpusReplay {
  @Test(arguments: [
    "capture-file", "wire", "agent-messages", "inventory-text", "known-hosts", "remote-replies",
  ])
  func corpusReplaysWithoutACrash(target: String) throws {
    let folder = Tools.packageRoot + "/Tests/FuzzCorpus/" + target
    let inputs = try FileManager.default.contentsOfDirectory(atPath: folder).filter { !$0.hasPrefix(".") }
    #expect(inputs.count >= 4, "the \(target) corpus is missing")
    let result = try Tools.run([try Tools.product("fuzz-\(target)"), folder])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(
      result.stdout.contains("fuzz-\(target): \(inputs.count) inputs replayed, no crash"), "\(result.stdout)")
  }
}
