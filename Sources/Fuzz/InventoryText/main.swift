// Fuzz target: inventory text in any format smcpair reads (its YAML, Ansible INI and YAML).
import FuzzReplay
import Inventory

func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
  let text = String(decoding: bytes, as: UTF8.self)
  if let inventory = try? InventoryParser.parse(text, file: "fuzz.yaml", baseDirectory: "/tmp") {
    _ = InventoryWriter.yaml(inventory)
  }
}

/// libFuzzer's entry (a C function: no captures).
func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
  return 0
}

@main enum Main {
  static func main() { FuzzReplay.main(name: "fuzz-inventory-text", fuzzInput) }
}
