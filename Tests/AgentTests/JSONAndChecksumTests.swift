import AgentProtocol
import Checksum
import Foundation
import TestSupport
import Testing

@Suite struct ProtocolMessages {
  @Test func requestsAreCheckedFieldByField() throws {
    let ok = try AgentRequest.parse(#"{"v":2,"id":7,"type":"status"}"#)
    #expect(ok.id == 7 && ok.type == .status)
    func code(_ line: String) -> String? {
      do {
        _ = try AgentRequest.parse(line)
        return nil
      } catch {
        return error.error.code.rawValue
      }
    }
    #expect(code("not json") == "malformed")
    #expect(code("[1]") == "malformed")
    #expect(code(#"{"id":1,"type":"hello"}"#) == "malformed")
    #expect(code(#"{"v":9,"id":1,"type":"hello"}"#) == "unsupported-version")
    #expect(code(#"{"v":2,"type":"hello"}"#) == "malformed")
    #expect(code(#"{"v":2,"id":1,"type":"dance"}"#) == "unknown-type")
  }

  @Test func plansAreValidated() throws {
    let plan = try CapturePlan(
      JSONValue.parse(
        #"{"session":"s-1","interfaces":["eth0"],"filter":"tcp","stop":{"duration_s":2,"packets":10},"rotate_bytes":1000000}"#
      ))
    #expect(plan.stop.durationSeconds == 2)
    #expect(plan.stop.packets == 10)
    #expect(plan.rotateBytes == 1_000_000)
    #expect(plan.smcDump == .auto)
    let again = try CapturePlan(.object(plan.fields))
    #expect(again == plan)
    for bad in [
      #"{"session":"../etc","interfaces":["eth0"]}"#, #"{"session":"s","interfaces":[]}"#,
      #"{"session":"s","interfaces":["eth0"],"snaplen":10}"#,
      #"{"session":"s","interfaces":["eth0"],"stop":{"duration_s":-1}}"#,
      #"{"session":"s","interfaces":["a/b"]}"#,
    ] {
      #expect(throws: AgentProtocolError.self) { try CapturePlan(JSONValue.parse(bad)) }
    }
  }
}

@Suite struct SHA256Digests {
  @Test func knownVectors() {
    var empty = SHA256()
    #expect(empty.finalizeHex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    var abc = SHA256()
    abc.update(Array("abc".utf8))
    #expect(abc.finalizeHex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    var million = SHA256()
    let chunk = [UInt8](repeating: 0x61, count: 1000)
    for _ in 0..<1000 { million.update(chunk) }
    #expect(million.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  @Test func filesAgreeWithSha256sum() throws {
    let dir = try TemporaryDirectory()
    var rng = SystemRandomNumberGenerator()
    for size in [0, 1, 55, 56, 63, 64, 65, 1 << 20, (1 << 20) + 17, 3_000_001] {
      let path = dir.file("f\(size)")
      try Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(
        to: URL(fileURLWithPath: path))
      let reference = try Tools.run(["sha256sum", path]).stdout.split(separator: " ").first.map(String.init)
      #expect(SHA256.file(path) == reference, "size \(size)")
    }
    #expect(SHA256.file(dir.file("missing")) == nil)
  }
}
