import AgentProtocol
// Fuzz target: one line of the agent protocol, as the agent (request, prepare fields) and
// as the coordinator (response, then its fields as every typed reply) read it.
import FuzzReplay

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  let line = String(decoding: bytes, as: UTF8.self)
  if let request = try? AgentRequest.parse(line) {
    _ = try? CapturePlan(request.body)
    _ = request.line
  }
  if let response = try? AgentResponse.parse(line) {
    _ = response.line
    let replies: [any AgentReply.Type] = [
      HelloReply.self, PrepareReply.self, StartReply.self, StatusReply.self, FinalizeReply.self,
      ClockReply.self, CleanupReply.self,
    ]
    for type in replies {
      if let reply = try? response.reply(type) { _ = reply.json.description }
    }
  }
  if let value = try? JSONValue.parse(line) { _ = value.description }
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-agent-messages", fuzzInput) }
}
