// The `extrema` command line (commander). Each command is a thin parser over
// a library workflow, so everything it does is also available from code;
// every command's options come from a schema (lib/config).
import { Command } from 'commander';
import { addEmbedCommand } from './embed';
import { addAttentionCommand } from './attention';
import { addPretrainCommands } from './pretrain';
import { addLinprobeCommand } from './linprobe';
import { addFinetuneCommand } from './finetune';
import { addPredictCommand } from './predict';
import { addPackCommand } from './pack';
import { addServeCommand } from './serve';
import { addLaunchCommand } from './launch';

export function buildProgram(): Command {
  const program = new Command('extrema')
    .description('ExtreMA self-supervised visual representation learning on libtorch')
    .showHelpAfterError()
    // options after a subcommand belong to it (launch passes everything after its own on)
    .enablePositionalOptions();
  addEmbedCommand(program);
  addAttentionCommand(program);
  addPretrainCommands(program);
  addLinprobeCommand(program);
  addFinetuneCommand(program);
  addPredictCommand(program);
  addPackCommand(program);
  addServeCommand(program);
  addLaunchCommand(program);
  return program;
}
