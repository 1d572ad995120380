import AgentProtocol
import Foundation
import LiveCapture
import TestSupport
import Testing

/// What can be checked here of the SMC dump device lifecycle: this kernel has no
/// SMC_GEN_NETLINK family and no `dummy` link type, so the tests cover probing (against a
/// family that exists), the refusal paths, names, and the clean-up of recorded leftovers.
@Suite(.serialized) struct SMCDumpLifecycle {
  @Test func genericNetlinkProbeWorks() {
    // nlctrl is the generic netlink controller itself: id 16 on every kernel.
    #expect(SMCDumpProbe.familyID(named: "nlctrl") == 16)
    #expect(SMCDumpProbe.familyID(named: "NO_SUCH_FAMILY_X") == nil)
    let probe = SMCDumpProbe.probe()
    #expect(!probe.supported)
    #expect(probe.detail.contains("SMC dump unsupported on this kernel"))
  }

  @Test func creatingWithoutKernelSupportIsRefusedAndLeavesNothing() throws {
    let root = try TemporaryDirectory("smcpair-dump")
    let error = #expect(throws: AgentProtocolError.self) {
      _ = try SMCDumpDevice.create(probe: SMCDumpProbe.probe(), root: root.path)
    }
    #expect(error?.code == .smcDumpUnsupported)
    let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: root.file("leftovers"))) ?? []
    #expect(leftovers.isEmpty)
  }

  @Test func namesLookLikeTheRealOnes() {
    for _ in 0..<100 {
      let name = SMCDumpDevice.newName()
      #expect(name.count == 13)
      #expect(name.hasPrefix("smc-dummy"))
      #expect(UInt16(name.dropFirst(9), radix: 16) != nil)
    }
  }

  @Test func cleanupRemovesRecordedLeftoversAfterAKill() throws {
    let lab = try TestLab(hosts: 1, tag: "l")
    let root = try TemporaryDirectory("smcpair-leftover")
    let device = "smc-dummyabcd"
    // As a killed agent would leave it: a device and its record.
    #expect(try lab.run(0, ["ip", "link", "add", device, "type", "ifb"]).status == 0)
    try FileManager.default.createDirectory(atPath: root.file("leftovers"), withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: root.file("leftovers/\(device)"), contents: nil)
    let result = try lab.run(0, [try Tools.product("smcpair-agent"), "--root", root.path, "cleanup"])
    #expect(result.status == 0)
    #expect(result.stdout.contains("removed \(device)"))
    #expect(try lab.run(0, ["ip", "link", "show", device]).status != 0)
    #expect(!FileManager.default.fileExists(atPath: root.file("leftovers/\(device)")))
    let again = try lab.run(0, [try Tools.product("smcpair-agent"), "--root", root.path, "cleanup"])
    #expect(again.stdout.contains("nothing to clean up"))
  }
}

@Suite(.serialized) struct StaticAgent {
  /// The release agent built with --static-swift-stdlib (scripts/test builds it).
  static func binary() throws -> String {
    let path = Tools.packageRoot + "/.build-static/release/smcpair-agent"
    if !FileManager.default.isExecutableFile(atPath: path) {
      let build = try Tools.run([
        "swift", "build", "-c", "release", "--static-swift-stdlib", "--scratch-path",
        Tools.packageRoot + "/.build-static",
        "--package-path", Tools.packageRoot, "--product", "smcpair-agent",
      ])
      #expect(build.status == 0, "\(build.stderr)")
    }
    return path
  }

  @Test func runsWithoutTheSwiftToolchain() throws {
    let agent = try Self.binary()
    let libraries = try Tools.run(["ldd", agent]).stdout
    #expect(!libraries.contains("libswift"), "\(libraries)")
    #expect(!libraries.contains("Foundation"))
    #expect(libraries.contains("libpcap"))
    // Hide the toolchain (and every Swift runtime) in a private mount namespace.
    let result = try Tools.run([
      "unshare", "-m", "sh", "-c", "mount -t tmpfs none /opt/swift && exec \"$0\" --version", agent,
    ])
    #expect(result.status == 0, "\(result.stderr)")
    #expect(result.stdout.hasPrefix("smcpair-agent "))
    let size = (try FileManager.default.attributesOfItem(atPath: agent)[.size] as? NSNumber)?.intValue ?? 0
    print("static smcpair-agent: \(size / 1024) KiB")
    #expect(size > 0)
  }
}
