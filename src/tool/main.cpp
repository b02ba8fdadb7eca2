// moequant: quantize a Hugging Face MoE checkpoint the way Megatron / Transformer Engine hold
// it, alone or under torchrun / mpirun; inspect and verify the result.
#include <cstdio>

#include "commands.h"
#include "moequant/common/error.h"
#include "moequant/common/interrupt_cleanup.h"

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
  CLI::App* e = add_eval_command(app, eval);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  int rc = 2;
  try {
    if (q->parsed()) rc = run_quantize(quantize);
    if (i->parsed()) rc = run_inspect(inspect);
    if (v->parsed()) rc = run_verify(verify);
    if (g->parsed()) rc = run_generate(generate);
    if (e->parsed()) rc = run_eval(eval);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moequant: error: %s\n", e.what());
    rc = 1;
  }
  moequant::end_quietly_on_interrupt(rc);  // the outcome is known: teardown is not "interrupted"
  return rc;
}
