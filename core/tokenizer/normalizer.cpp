#include "core/tokenizer/normalizer.h"

#include "core/common/error.h"

namespace pipeprune::tok {
namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t last = 0;
  for (size_t hit = s.find(from); hit != std::string_view::npos; hit = s.find(from, last)) {
    out.append(s.substr(last, hit - last));
    out.append(to);
    last = hit + from.size();
  }
  out.append(s.substr(last));
  return out;
}

}  // namespace

Normalizer::Normalizer(const Json& j, const std::string& where) { add(j, where); }

void Normalizer::add(const Json& j, const std::string& where) {
  const std::string type = json_type(j, where);
  if (type == "Sequence") {
    const Json& list = json_field(j, "normalizers", where);
    PIPEPRUNE_CHECK(list.is_array(), FormatError, where << ".normalizers must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      add(list[i], where + ".normalizers[" + std::to_string(i) + "]");
    }
  } else if (type == "Prepend") {
    steps_.push_back({Kind::kPrepend, json_string(j, "prepend", where), "", nullptr});
  } else if (type == "Replace") {
    bool is_regex = false;
    Step step{Kind::kReplace, json_pattern(j, "pattern", &is_regex, where),
              json_string(j, "content", where), nullptr};
    if (is_regex) step.regex = std::make_shared<Regex>(step.text, where + ".pattern.Regex");
    PIPEPRUNE_CHECK(is_regex || !step.text.empty(), FormatError,
                    where << ".pattern.String is empty; a Replace needs something to replace");
    steps_.push_back(std::move(step));
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    Step step{Kind::kNormalForm, "", "", nullptr};
    step.form = type == "NFC"    ? NormalForm::kNfc
                : type == "NFD"  ? NormalForm::kNfd
                : type == "NFKC" ? NormalForm::kNfkc
                                 : NormalForm::kNfkd;
    steps_.push_back(std::move(step));
  } else {
    PIPEPRUNE_FAIL(FormatError,
                   where << ".type '" << type
                         << "' is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, "
                            "NFKC, NFKD)");
  }
}

std::string Normalizer::apply(std::string_view s) const {
  std::string text(s);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kPrepend:
        // Hugging Face prepends only to a non-empty string.
        if (!text.empty()) text.insert(0, step.text);
        break;
      case Kind::kReplace:
        if (step.regex == nullptr) {
          text = replace_all(text, step.text, step.content);
        } else {
          std::string out;
          size_t last = 0;
          for (const auto& [begin, end] : step.regex->find_all(text)) {
            out.append(text, last, begin - last);
            out.append(step.content);
            last = end;
          }
          out.append(text, last, std::string::npos);
          text = std::move(out);
        }
        break;
      case Kind::kNormalForm:
        text = unicode_normalize(text, step.form);
        break;
    }
  }
  return text;
}

}  // namespace pipeprune::tok
