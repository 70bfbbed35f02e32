#include "core/io/torch_pickle.h"

#include <cctype>
#include <map>
#include <set>

#include "core/common/error.h"

namespace pipeprune {
namespace {

// Opcodes of pickle protocols 2-5 that torch.save emits for a state dict (Lib/pickletools.py).
enum Op : uint8_t {
  kMark = '(',
  kStop = '.',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinUnicode = 'X',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kSetItems = 'u',
  kEmptyDict = '}',
  kEmptyList = ']',
  kEmptyTuple = ')',
  kProto = 0x80,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

constexpr const char* kOrderedDict = "collections.OrderedDict";
constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";

// A storage class is torch.<Name>Storage; which names pipeprune can read is the caller's check,
// so that the error names the tensor and its dtype.
bool is_storage_class(const std::string& qualified) {
  const std::string prefix = "torch.";
  const std::string suffix = "Storage";
  if (qualified.size() <= prefix.size() + suffix.size()) return false;
  if (qualified.compare(0, prefix.size(), prefix) != 0) return false;
  if (qualified.compare(qualified.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  for (size_t i = prefix.size(); i < qualified.size(); ++i) {
    if (!std::isalnum(static_cast<unsigned char>(qualified[i]))) return false;
  }
  return true;
}

enum class Kind { kNone, kBool, kInt, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kString: return "str";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "class";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

// A plain value. Containers, storages and tensors live in the parser's arenas and are referred
// to by index, so a memo entry and the stack share one dict (SETITEMS after BINPUT mutates the
// memoised object, as in Python) and a self-referencing pickle cannot leak.
struct Value {
  Kind kind = Kind::kNone;
  int64_t number = 0;  // kBool, kInt
  std::string text;    // kString, kGlobal (qualified name)
  size_t ref = 0;      // kTuple/kList/kDict -> items_, kStorage -> storages_, kTensor -> tensors_
};

class Parser {
 public:
  Parser(const std::string& file, const uint8_t* data, size_t n) : file_(file), data_(data), n_(n) {}

  std::vector<PickledTensor> run() {
    for (;;) {
      const size_t at = pos_;
      const uint8_t op = byte();
      if (op == kStop) return state_dict(pop(at));
      step(op, at);
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    PIPEPRUNE_FAIL(FormatError, file_ << ": data.pkl: " << what << " at byte " << at
                                      << "; the file is corrupt or not a state dict saved by torch.save");
  }

  uint8_t byte() {
    if (pos_ >= n_) fail(pos_, "the pickle ends before its STOP opcode (truncated)");
    return data_[pos_++];
  }
  uint64_t little_endian(size_t n_bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < n_bytes; ++i) v |= static_cast<uint64_t>(byte()) << (8 * i);
    return v;
  }
  std::string take(uint64_t n_bytes) {
    if (n_bytes > n_ - pos_) fail(pos_, "a string of " + std::to_string(n_bytes) + " bytes runs past the end");
    std::string out(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n_bytes));
    pos_ += static_cast<size_t>(n_bytes);
    return out;
  }
  std::string line() {
    const size_t start = pos_;
    while (byte() != '\n') {
    }
    return std::string(reinterpret_cast<const char*>(data_ + start), pos_ - 1 - start);
  }

  Value pop(size_t at) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) fail(at, "stack underflow");
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  std::vector<Value> pop_to_mark(size_t at) {
    if (marks_.empty()) fail(at, "no MARK to pop to");
    std::vector<Value> out(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back())),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return out;
  }
  Value& top(size_t at, Kind kind, const char* op) {
    if (stack_.empty() || stack_.back().kind != kind) {
      fail(at, std::string(op) + " needs a " + kind_name(kind) + " below its operands");
    }
    return stack_.back();
  }
  Value container(Kind kind, std::vector<Value> items) {
    items_.push_back(std::move(items));
    return Value{kind, 0, {}, items_.size() - 1};
  }
  Value integer(int64_t v) { return Value{Kind::kInt, v, {}, 0}; }

  Value global(size_t at, const std::string& module, const std::string& name) {
    const std::string qualified = module + "." + name;
    PIPEPRUNE_CHECK(qualified == kOrderedDict || qualified == kRebuildTensor || is_storage_class(qualified),
                    FormatError,
                    file_ << ": data.pkl refers to " << qualified << " (byte " << at
                          << "), which a state dict of tensors never holds; refusing to unpickle it "
                          << "(pipeprune reads only tensors; convert the checkpoint to safetensors)");
    return Value{Kind::kGlobal, 0, qualified, 0};
  }

  void memo_put(size_t at, uint64_t index) {
    if (stack_.empty()) fail(at, "memo store with an empty stack");
    memo_[index] = stack_.back();
  }
  void memo_get(size_t at, uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail(at, "memo entry " + std::to_string(index) + " is read before it is stored");
    stack_.push_back(it->second);
  }

  bool push_literal(uint8_t op, size_t at);
  void step(uint8_t op, size_t at);
  Value reduce(size_t at, const Value& callable, const Value& args);
  Value persistent_id(size_t at, const Value& pid);
  std::vector<PickledTensor> state_dict(const Value& result);
  std::vector<int64_t> int_tuple(size_t at, const Value& v, const char* what);

  const std::string& file_;
  const uint8_t* data_;
  size_t n_;
  size_t pos_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Value> memo_;
  std::vector<std::vector<Value>> items_;
  std::vector<PickledStorage> storages_;
  std::vector<PickledTensor> tensors_;
};

// Opcodes that push one literal value (a string, number, bool, None or an empty container);
// false for any other opcode.
bool Parser::push_literal(uint8_t op, size_t at) {
  switch (op) {
    case kEmptyDict: stack_.push_back(container(Kind::kDict, {})); return true;
    case kEmptyList: stack_.push_back(container(Kind::kList, {})); return true;
    case kEmptyTuple: stack_.push_back(container(Kind::kTuple, {})); return true;
    case kBinUnicode: stack_.push_back(Value{Kind::kString, 0, take(little_endian(4)), 0}); return true;
    case kShortBinUnicode: stack_.push_back(Value{Kind::kString, 0, take(byte()), 0}); return true;
    case kBinInt: stack_.push_back(integer(static_cast<int32_t>(little_endian(4)))); return true;
    case kBinInt1: stack_.push_back(integer(byte())); return true;
    case kBinInt2: stack_.push_back(integer(static_cast<int64_t>(little_endian(2)))); return true;
    case kLong1: {
      // Two's complement little-endian; torch.save uses it for counts of 2^31 and more.
      const uint8_t n_bytes = byte();
      if (n_bytes > 8) fail(at, "an integer of " + std::to_string(n_bytes) + " bytes does not fit 64 bits");
      uint64_t v = little_endian(n_bytes);
      if (n_bytes > 0 && n_bytes < 8 && (v >> (8 * n_bytes - 1)) != 0) v |= ~uint64_t{0} << (8 * n_bytes);
      stack_.push_back(integer(static_cast<int64_t>(v)));
      return true;
    }
    case kNone: stack_.push_back(Value{}); return true;
    case kNewTrue: stack_.push_back(Value{Kind::kBool, 1, {}, 0}); return true;
    case kNewFalse: stack_.push_back(Value{Kind::kBool, 0, {}, 0}); return true;
    default: return false;
  }
}

void Parser::step(uint8_t op, size_t at) {
  if (push_literal(op, at)) return;
  switch (op) {
    case kProto: {
      const uint8_t version = byte();
      if (version < 2 || version > 5) fail(at, "pickle protocol " + std::to_string(version) + " (expected 2 to 5)");
      return;
    }
    case kFrame: (void)little_endian(8); return;  // protocol 4 framing: only a length hint
    case kMark: marks_.push_back(stack_.size()); return;
    case kTuple: stack_.push_back(container(Kind::kTuple, pop_to_mark(at))); return;
    case kTuple1:
    case kTuple2:
    case kTuple3: {
      std::vector<Value> items(static_cast<size_t>(op - kTuple1 + 1));
      for (auto it = items.rbegin(); it != items.rend(); ++it) *it = pop(at);
      stack_.push_back(container(Kind::kTuple, std::move(items)));
      return;
    }
    case kGlobal: {
      const std::string module = line();
      const std::string name = line();
      stack_.push_back(global(at, module, name));
      return;
    }
    case kStackGlobal: {
      const Value name = pop(at);
      const Value module = pop(at);
      if (name.kind != Kind::kString || module.kind != Kind::kString) fail(at, "STACK_GLOBAL needs two strings");
      stack_.push_back(global(at, module.text, name.text));
      return;
    }
    case kBinPut: memo_put(at, byte()); return;
    case kLongBinPut: memo_put(at, little_endian(4)); return;
    case kMemoize: memo_put(at, memo_.size()); return;
    case kBinGet: memo_get(at, byte()); return;
    case kLongBinGet: memo_get(at, little_endian(4)); return;
    case kBinPersId: {
      const Value pid = pop(at);
      stack_.push_back(persistent_id(at, pid));
      return;
    }
    case kReduce: {
      const Value args = pop(at);
      const Value callable = pop(at);
      stack_.push_back(reduce(at, callable, args));
      return;
    }
    case kSetItem: {
      Value value = pop(at);
      Value key = pop(at);
      std::vector<Value>& dict = items_[top(at, Kind::kDict, "SETITEM").ref];
      dict.push_back(std::move(key));
      dict.push_back(std::move(value));
      return;
    }
    case kSetItems: {
      std::vector<Value> pairs = pop_to_mark(at);
      if (pairs.size() % 2 != 0) fail(at, "SETITEMS with an odd number of keys and values");
      std::vector<Value>& dict = items_[top(at, Kind::kDict, "SETITEMS").ref];
      for (Value& v : pairs) dict.push_back(std::move(v));
      return;
    }
    case kAppend: {
      Value value = pop(at);
      items_[top(at, Kind::kList, "APPEND").ref].push_back(std::move(value));
      return;
    }
    case kAppends: {
      std::vector<Value> values = pop_to_mark(at);
      std::vector<Value>& list = items_[top(at, Kind::kList, "APPENDS").ref];
      for (Value& v : values) list.push_back(std::move(v));
      return;
    }
    case kBuild:
      // The state of an OrderedDict: its attributes (a state dict's `_metadata` of module
      // versions), which say nothing about the tensors.
      (void)pop(at);
      (void)top(at, Kind::kDict, "BUILD");
      return;
    default: {
      static const char* hex = "0123456789abcdef";
      fail(at, std::string("opcode 0x") + hex[op >> 4] + hex[op & 15] + " is not one torch.save uses for a state dict");
    }
  }
}

Value Parser::persistent_id(size_t at, const Value& pid) {
  // ('storage', torch.<Type>Storage, key, location, numel), torch/serialization.py _save.
  const std::vector<Value>* f = pid.kind == Kind::kTuple ? &items_[pid.ref] : nullptr;
  const bool ok = f != nullptr && f->size() == 5 && (*f)[0].kind == Kind::kString && (*f)[0].text == "storage" &&
                  (*f)[1].kind == Kind::kGlobal && is_storage_class((*f)[1].text) && (*f)[2].kind == Kind::kString &&
                  (*f)[3].kind == Kind::kString && (*f)[4].kind == Kind::kInt;
  if (!ok) fail(at, "a persistent id that is not ('storage', torch.<Type>Storage, key, location, numel)");
  storages_.push_back(PickledStorage{(*f)[1].text.substr(6), (*f)[2].text, (*f)[3].text, (*f)[4].number});
  return Value{Kind::kStorage, 0, {}, storages_.size() - 1};
}

std::vector<int64_t> Parser::int_tuple(size_t at, const Value& v, const char* what) {
  if (v.kind != Kind::kTuple) fail(at, std::string("a tensor whose ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (const Value& item : items_[v.ref]) {
    if (item.kind != Kind::kInt) fail(at, std::string("a tensor whose ") + what + " holds a " + kind_name(item.kind));
    out.push_back(item.number);
  }
  return out;
}

Value Parser::reduce(size_t at, const Value& callable, const Value& args) {
  if (callable.kind != Kind::kGlobal || args.kind != Kind::kTuple) fail(at, "REDUCE of something not a class");
  const std::vector<Value> a = items_[args.ref];
  if (callable.text == kOrderedDict) {
    if (!a.empty()) fail(at, "collections.OrderedDict built from arguments");
    return container(Kind::kDict, {});
  }
  if (callable.text == kRebuildTensor) {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if ((a.size() != 6 && a.size() != 7) || a[0].kind != Kind::kStorage || a[1].kind != Kind::kInt) {
      fail(at, "_rebuild_tensor_v2 arguments that are not (storage, offset, size, stride, ...)");
    }
    PickledTensor t;
    t.storage = storages_[a[0].ref];
    t.storage_offset = a[1].number;
    t.sizes = int_tuple(at, a[2], "size");
    t.strides = int_tuple(at, a[3], "stride");
    if (t.sizes.size() != t.strides.size()) fail(at, "a tensor with as many strides as dimensions");
    tensors_.push_back(std::move(t));
    return Value{Kind::kTensor, 0, {}, tensors_.size() - 1};
  }
  fail(at, "REDUCE of " + callable.text + ", which is a storage class, not a callable torch.save uses");
}

std::vector<PickledTensor> Parser::state_dict(const Value& result) {
  PIPEPRUNE_CHECK(result.kind == Kind::kDict, FormatError,
                  file_ << ": data.pkl holds a " << kind_name(result.kind)
                        << ", not a dict of tensors; pipeprune reads the flat state dict that "
                        << "save_pretrained(safe_serialization=False) writes");
  const std::vector<Value>& pairs = items_[result.ref];
  std::vector<PickledTensor> out;
  std::set<std::string> seen;
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
    const Value& key = pairs[i];
    const Value& value = pairs[i + 1];
    PIPEPRUNE_CHECK(key.kind == Kind::kString, FormatError,
                    file_ << ": data.pkl: the state dict has a " << kind_name(key.kind)
                          << " key; pipeprune reads a flat dict of tensor name -> tensor");
    PIPEPRUNE_CHECK(value.kind == Kind::kTensor, FormatError,
                    file_ << ": data.pkl: entry " << key.text << " is a " << kind_name(value.kind)
                          << ", not a tensor; pipeprune reads the flat state dict that "
                          << "save_pretrained(safe_serialization=False) writes, not a nested one");
    PIPEPRUNE_CHECK(seen.insert(key.text).second, FormatError,
                    file_ << ": data.pkl: tensor " << key.text << " appears twice; the file is corrupt");
    out.push_back(tensors_[value.ref]);
    out.back().name = key.text;
  }
  return out;
}

}  // namespace

std::vector<PickledTensor> parse_torch_state_dict(const std::string& file, const uint8_t* data, size_t n) {
  return Parser(file, data, n).run();
}

}  // namespace pipeprune
