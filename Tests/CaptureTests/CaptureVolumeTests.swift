import Foundation
import TestSupport
import Testing

/// `smcpair capture --smc-type/--smc-mode/--data-snaplen`: the flags reach both agents through
/// the plan, the summary and session.json say what was left out, and the merge still aligns.
@Suite(.serialized) struct CaptureVolume {
  @Test func cdcOnlyCaptureAlignsAndSaysWhatWasLeftOut() throws {
    let env = try CaptureLab(hosts: 2, tag: "cv")
    let result = try env.capture(
      ["--pair", "pair1", "--json", "--smc-type", "cdc"]
        + env.emulatorWorkload(scenario: "bulk", extra: ["--messages", "40", "--size", "4000"]))
    #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
    let pair = try #require((try env.summary(result)["pairs"] as? [[String: Any]])?.first)
    #expect(pair["state"] as? String == "complete")
    let folder = try #require(pair["folder"] as? String)
    let record = try env.record(folder)
    #expect(record["smc_type"] as? String == "cdc")
    #expect(record["smc_mode"] as? String == "all")
    for role in ["client", "server"] {
      let side = pair.object("sides").object(role)
      let records = side.object("dump_records")
      #expect((records["left_out_data"] as? Int ?? 0) > 0, "\(role): \(side)")
      #expect((records["cdc"] as? Int ?? 0) > 0 && records["data"] as? Int == 0, "\(role): \(records)")
      let recorded = record.object("sides").object(role).object("dump_records")
      #expect(NSDictionary(dictionary: recorded) == NSDictionary(dictionary: records), "\(recorded)")
    }
    // Aligned from the CDC records (and the NIC's TCP) alone.
    let alignment = pair.object("alignment")
    #expect(alignment["verdict"] as? String == "bounded")
    #expect(alignment["causality_violations"] as? Int == 0)
    let aligned = try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: folder + "/alignment.json")))
        as? [String: Any])
    #expect((aligned.object("pairs")["cdc"] as? Int ?? 0) > 0)
    #expect(aligned.object("pairs")["data"] as? Int == 0)
    #expect(env.agentsGone().isEmpty)

    // The text summary says it in words.
    let text = try env.capture(
      ["--pair", "pair1", "--smc-type", "raw", "--data-snaplen", "64"]
        + env.emulatorWorkload(scenario: "pingpong", port: 7100))
    #expect(text.status == 0, "\(text.stdout)\n\(text.stderr)")
    #expect(text.stdout.contains("CDC records left out by --smc-type raw"), "\(text.stdout)")
    #expect(text.stdout.contains("cut to 64 bytes by --data-snaplen"), "\(text.stdout)")
  }

  @Test func unknownValuesAreUsageErrorsNamingTheFlag() throws {
    let smcpair = try Tools.product("smcpair")
    let cases: [([String], String)] = [
      (["--smc-type", "data"], "--smc-type 'data' is not one of all, raw, cdc"),
      (["--smc-mode", "rdma"], "--smc-mode 'rdma' is not one of all, smc, smcr, smcd"),
      (["--data-snaplen", "70000"], "--data-snaplen 70000 is out of range"),
      (["--smc-type", "cdc", "--data-snaplen", "64"], "--smc-type cdc keeps none"),
    ]
    for (arguments, message) in cases {
      let result = try Tools.run([smcpair, "capture", "-i", "/nonexistent.yaml", "--pair", "p"] + arguments)
      #expect(result.status == 64, "\(arguments): \(result.stderr)")
      #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
    }
    let help = try Tools.run([smcpair, "capture", "--help"])
    for taught in ["--smc-type <all|raw|cdc>", "--smc-mode <all|smc|smcr|smcd>", "--data-snaplen <N>"] {
      #expect(help.stdout.contains(taught), "\(taught)")
    }
  }
}
