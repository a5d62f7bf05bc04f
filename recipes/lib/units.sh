# Shared by recipes/digits/run.sh and recipes/synth/run.sh (sourced): the training stages of the TTS models on
# speech units. Reads the caller's $stage, $stop_stage, $exp and the array "steps" (--trainer.max_steps ... or empty).

in_range() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

train_units_stage() {  # n family config run-dir store [extra args...]: train on a units store, resumably
  local n=$1 family=$2 config=$3 dir=$4 store=$5
  shift 5
  in_range "$n" || return 0
  echo "stage $n: $family ($config) on $store -> $exp/$dir   [${SECONDS}s in]"
  local resume=()
  [ -f "$exp/$dir/checkpoints/last.ckpt" ] && resume=(--ckpt_path last)
  audiokit train "$family" --config "$config" --data.train_manifest "$store/train.jsonl" \
    --data.val_manifest "$store/valid.jsonl" --data.token_store "$store" \
    --trainer.default_root_dir "$exp/$dir" --trainer.callbacks.init_args.dirpath "$exp/$dir/checkpoints" \
    --trainer.enable_progress_bar false "$@" "${steps[@]}" "${resume[@]}"
}
