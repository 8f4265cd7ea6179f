// The interpreter in-process: CPython embedded in this test binary, the Python shell
// started, requests answered as JSON. Output capture is not started, so fds 1 and 2
// stay the test's own; the wire protocol is tested by tests/kernel/*.py.
#include <gtest/gtest.h>
#include <pybind11/embed.h>

#include <string>
#include <vector>

#include "kernel/fd_capture.hpp"
#include "kernel/interpreter.hpp"
#include "kernel/python_runtime.hpp"
#include "kernel/utf8_decoder.hpp"
#include "xeus/xcomm.hpp"

namespace {

using terra::kernel::nl::json;

struct published {
  std::string msg_type;
  json content;
};

// One interpreter for the whole binary: CPython can be initialised only once.
class InterpreterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    terra::kernel::start_python(terra::kernel::find_python_executable());
    s_output = new terra::kernel::fd_capture([](const std::string&, const std::string&) {});
    s_interp = new terra::kernel::interpreter(*s_output);
    xeus::register_interpreter(s_interp);
    s_interp->register_publisher(
        [](const std::string& type, json, json content, xeus::buffer_sequence) {
          s_messages.push_back({type, std::move(content)});
        });
    s_interp->register_comm_manager(new xeus::xcomm_manager(nullptr));
    s_interp->register_parent_header([]() -> const json& {
      static const json header = json::object();
      return header;
    });
    s_interp->configure();
    s_release = new pybind11::gil_scoped_release();
  }

  void SetUp() override { s_messages.clear(); }

  static std::vector<published> of_type(const std::string& type) {
    std::vector<published> found;
    for (const auto& m : s_messages) {
      if (m.msg_type == type) found.push_back(m);
    }
    return found;
  }

  static json execute(const std::string& code) {
    return s_interp->execute_request(code, false, true, json::object(), false);
  }

  static terra::kernel::fd_capture* s_output;
  static terra::kernel::interpreter* s_interp;
  static pybind11::gil_scoped_release* s_release;
  static std::vector<published> s_messages;
};

terra::kernel::fd_capture* InterpreterTest::s_output = nullptr;
terra::kernel::interpreter* InterpreterTest::s_interp = nullptr;
pybind11::gil_scoped_release* InterpreterTest::s_release = nullptr;
std::vector<published> InterpreterTest::s_messages;

TEST_F(InterpreterTest, ExecuteResultAndCount) {
  json first = execute("6 * 7");
  EXPECT_EQ(first["status"], "ok");
  auto results = of_type("execute_result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].content["data"]["text/plain"], "42");
  EXPECT_EQ(results[0].content["execution_count"], first["execution_count"]);
  json second = execute("pass");
  EXPECT_EQ(second["execution_count"].get<int>(), first["execution_count"].get<int>() + 1);
}

TEST_F(InterpreterTest, ErrorBecomesErrorReplyAndMessage) {
  json reply = execute("x = 1\nraise ValueError('bad value')");
  EXPECT_EQ(reply["status"], "error");
  EXPECT_EQ(reply["ename"], "ValueError");
  EXPECT_EQ(reply["evalue"], "bad value");
  auto errors = of_type("error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].content["traceback"], reply["traceback"]);
}

TEST_F(InterpreterTest, StatePersistsAcrossCells) {
  execute("kept = [1, 2]");
  execute("kept.append(3)");
  execute("len(kept)");
  auto results = of_type("execute_result");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].content["data"]["text/plain"], "3");
}

TEST_F(InterpreterTest, CompleteInspectIsComplete) {
  json complete = s_interp->complete_request("import itertool", 15);
  EXPECT_EQ(complete["status"], "ok");
  EXPECT_EQ(complete["matches"], json::array({"itertools"}));
  EXPECT_EQ(complete["cursor_start"], 7);

  json inspect = s_interp->inspect_request("len", 3, 0);
  EXPECT_EQ(inspect["status"], "ok");
  EXPECT_TRUE(inspect["found"].get<bool>());

  EXPECT_EQ(s_interp->is_complete_request("for i in x:")["status"], "incomplete");
  EXPECT_EQ(s_interp->is_complete_request("1 +* 2")["status"], "invalid");
  EXPECT_EQ(s_interp->is_complete_request("1 + 2")["status"], "complete");
}

TEST_F(InterpreterTest, KernelInfo) {
  json info = s_interp->kernel_info_request();
  EXPECT_EQ(info["implementation"], "terra");
  EXPECT_EQ(info["language_info"]["name"], "python");
  EXPECT_EQ(info["language_info"]["file_extension"], ".py");
}

TEST_F(InterpreterTest, DisplayDataKeepsMimeBundles) {
  execute("from IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))");
  auto shown = of_type("display_data");
  ASSERT_EQ(shown.size(), 1u);
  EXPECT_EQ(shown[0].content["data"]["text/html"], "<b>x</b>");
}

TEST(Utf8Decoder, ReplacesInvalidBytesAndJoinsSplitCharacters) {
  terra::kernel::utf8_decoder decoder;
  EXPECT_EQ(decoder.decode("ok \xff!", 5), "ok \xEF\xBF\xBD!");
  EXPECT_EQ(decoder.decode("\xC3", 1), "");  // held: may complete with the next chunk
  EXPECT_EQ(decoder.decode("\xA9", 1), "\xC3\xA9");
  EXPECT_EQ(decoder.decode("\xE2\x82", 2), "");
  EXPECT_EQ(decoder.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.decode("\xED\xA0\x80", 3),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
