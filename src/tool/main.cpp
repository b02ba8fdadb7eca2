// moequant: quantize a Hugging Face MoE checkpoint the way Megatron / Transformer Engine hold
// it, alone or under torchrun / mpirun; inspect and verify the result.
#include <cstdio>
#include <string>

#include "commands.h"
#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"

namespace {

// CLI11's message, with its conversion failure ("Could not convert: --layers = 1.5") said as the
// other flag errors are ("--layers: ...").
std::string usage_error_text(const CLI::ParseError& e) {
  const std::string what = e.what(), prefix = "Could not convert: ";
  const size_t eq = what.find(" = ");
  if (what.rfind(prefix, 0) != 0 || eq == std::string::npos) return what;
  return what.substr(prefix.size(), eq - prefix.size()) + ": '" + what.substr(eq + 3) +
         "' is not a value of the flag's type (a whole number where it counts, within its range)";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace moequant::tool;
  // First, before any thread exists: SIGTERM / SIGINT remove what the run half-made and exit
  // with 128 + the signal (common/interrupt_cleanup.h).
  moequant::install_interrupt_cleanup("moequant");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep stdout lines in order with stderr progress
  CLI::App app{
      "moequant: quantize Mixture-of-Experts checkpoints (fp8, nvfp4, fp8_block, int4) and export "
      "Hugging Face folders that serving engines load.\nRun alone, under `torchrun --no-python`, "
      "or under `mpirun`.",
      "moequant"};
  app.require_subcommand(1);
  QuantizeArgs quantize;
  InspectArgs inspect;
  VerifyArgs verify;
  GenerateArgs generate;
  EvalArgs eval;
  CLI::App* q = add_quantize_command(app, quantize);
  CLI::App* i = add_inspect_command(app, inspect);
  CLI::App* v = add_verify_command(app, verify);
  CLI::App* g = add_generate_command(app, generate);
  CLI::App* e_cmd = add_eval_command(app, eval);
  // A first word that is no command: CLI11 would only say that a subcommand is required.
  bool known = argc < 2 || argv[1][0] == '-';
  for (CLI::App* c : {q, i, v, g, e_cmd}) known = known || c->get_name() == argv[1];
  if (!known) {
    std::fprintf(stderr,
                 "moequant: error: unknown command '%s' (commands: quantize, inspect, verify, "
                 "generate, eval; see moequant --help)\n",
                 argv[1]);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as every other error (CLI11 adds a second, unprefixed "Run with --help" line),
    // pointing at the help of the command given.
    std::string command = "moequant";
    for (CLI::App* c : {q, i, v, g, e_cmd})
      if (argc > 1 && c->get_name() == argv[1]) command += " " + c->get_name();
    std::fprintf(stderr, "moequant: error: %s (see %s --help)\n", usage_error_text(e).c_str(),
                 command.c_str());
    return 2;
  }
  int rc = 2;
  try {
    if (q->parsed()) rc = run_quantize(quantize);
    if (i->parsed()) rc = run_inspect(inspect);
    if (v->parsed()) rc = run_verify(verify);
    if (g->parsed()) rc = run_generate(generate);
    if (e_cmd->parsed()) rc = run_eval(eval);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moequant: error: %s\n", e.what());
    rc = 1;
  }
  moequant::end_quietly_on_interrupt(rc);  // the outcome is known: teardown is not "interrupted"
  return rc;
}
