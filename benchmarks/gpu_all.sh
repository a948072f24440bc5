#!/usr/bin/env bash
# gankit's CUDA work in three stages, each under 9 minutes, every result written into OUTDIR.
#
#   bash benchmarks/gpu_all.sh STAGE OUTDIR        STAGE: tests | bench | tune
#
# On the GPU machine the device tool runs a command in the repository root and brings back at most 8 files
# of $OUT, one command at most 10 minutes. One stage a call, the most wanted first; write this checkout's
# commit into the command (the machine's copy has no .git), e.g. GANKIT_COMMIT=$(git rev-parse HEAD) here:
#
#   run(command="GANKIT_COMMIT=<sha> bash benchmarks/gpu_all.sh tune $OUT", timeout_s=590)
#   run(command="GANKIT_COMMIT=<sha> bash benchmarks/gpu_all.sh bench $OUT", timeout_s=590)
#   run(command="GANKIT_COMMIT=<sha> bash benchmarks/gpu_all.sh tests $OUT", timeout_s=590)
#
# A stage ends within ~9 minutes (500 s of steps, 5 s of grace a step, the GPU probe). With 15 minutes of
# device time a session, starts included, plan one stage a session, or shrink them: GPU_ALL_BUDGET_S=240
# runs a stage in ~4.5 minutes with every limit halved (the sweep and the benchmark rows past their
# deadline are recorded as left out). Call give_back after the last stage.
#
# Stages and their steps (time limit in seconds; the limits add up to the stage's budget, 500 s by default):
#   tests  env 15 | build-ext 45 (python setup.py build_ext --inplace, where setup.py exists) | pytest-gpu 250
#          (the test files that touch CUDA, Triton or the kernels) | pytest-rest 175 (every other test) |
#          test-report 15                        -> summary-tests.json tests.log env-tests.json
#                                                   junit-pytest-gpu.xml junit-pytest-rest.xml failures-tests.txt
#   bench  warm-cache 80 | bench-bf16 165 | bench-bf16-max-autotune 105 | bench-tf32-fp32 135 | bench-report 15
#                                                -> summary-bench.json bench.log bench.json bench.png
#   tune   warm-cache 60 | baselines 170 | disk 75 | sweep 180 | tune-report 15
#                                                -> summary-tune.json tune.log baselines.json disk.json tune.json
#                                                   tune.png tune-notes.md
#          (tune-report prints each measured rate beside the committed on-paper prediction,
#          benchmarks/results/sm90-prediction-*.json, into tune.log and tune-notes.md)
#
# Every step runs, whatever the ones before it did: its exit status, time and reason go into
# OUTDIR/summary-STAGE.json (rewritten after each step) and its output into OUTDIR/STAGE.log (and stdout).
# A step gets the stage's time left less what the steps after it are owed, so time a step leaves unused
# goes to the next; past its limit it gets SIGINT (pytest then writes its JUnit XML; the benchmark
# scripts have saved their JSON row by row), and SIGKILL 5 s later. The Python steps are told 80 % of
# their limit as --deadline-s and stop starting new work after it. Without a CUDA device every step is
# recorded as skipped, with the reason, and the script exits 0; with one, it exits 1 if any step failed
# or timed out. OUTDIR must be empty or absent: no stage writes more than 8 files, the device tool's limit.
#
# Environment: PYTHON (default python3: the GPU machine's python3.12, or a venv's), GPU_ALL_BUDGET_S (the
# stage's budget in seconds: the step limits scale to it), GANKIT_COMMIT (recorded where git cannot tell the
# commit). PYTHONPATH gets the repository root. The warm-cache steps compile Triton configurations in parallel processes into
# Triton's on-disk cache, which later steps (and later stages on the same warm machine) load from.
set -u -o pipefail

STAGE=${1:-}
OUTDIR=${2:-}
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  echo "usage: bash benchmarks/gpu_all.sh tests|bench|tune OUTDIR" >&2
  exit 2
}
[[ $STAGE == tests || $STAGE == bench || $STAGE == tune ]] || usage
[[ -n $OUTDIR ]] || usage
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
if [[ -n $(ls -A "$OUTDIR") ]]; then
  echo "gpu_all.sh: $OUTDIR is not empty: give each stage an empty folder (its files are counted)" >&2
  exit 2
fi
cd "$ROOT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
LOG="$OUTDIR/$STAGE.log"
SUMMARY="$OUTDIR/summary-$STAGE.json"
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
START=$SECONDS
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo "${GANKIT_COMMIT:-unknown}")
FAILURES=0
PLAN_NAMES=()
PLAN_LIMITS=()
STEP_JSON=()
STEP_LINES=()
LEFT_OUT=()

json() { # $1 as a JSON string (control characters dropped)
  local s
  s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/}
  printf '"%s"' "$s"
}

json_list() { # JSON strings of the arguments, as a list
  local out="" item
  for item in "$@"; do out+="${out:+, }$(json "$item")"; done
  printf '[%s]' "$out"
}

write_summary() { # OUTDIR/summary-STAGE.json from what has been recorded so far
  local files=() steps="" item
  while IFS= read -r item; do files+=("$item"); done < <(cd "$OUTDIR" && find . -type f ! -name '*.tmp' | sed 's|^\./||' | sort)
  for item in "${STEP_JSON[@]}"; do steps+="${steps:+,$'\n'    }$item"; done
  cat >"$SUMMARY.tmp" <<EOF
{
  "stage": $(json "$STAGE"),
  "started": $(json "$STARTED"),
  "seconds": $((SECONDS - START)),
  "stage_budget_s": $STAGE_BUDGET,
  "gpu": $(json "$GPU_NAME"),
  "no_gpu_reason": $(json "$NO_GPU"),
  "python": $(json "$PY"),
  "git_commit": $(json "$COMMIT"),
  "failed_or_timed_out": $FAILURES,
  "left_out": $(json_list "${LEFT_OUT[@]}"),
  "files": $(json_list "${files[@]}"),
  "steps": [
    $steps
  ]
}
EOF
  mv "$SUMMARY.tmp" "$SUMMARY"
}

record() { # NAME STATUS EXIT_CODE SECONDS LIMIT REASON COMMAND
  local code=${3:-null}
  STEP_JSON+=("{\"name\": $(json "$1"), \"status\": $(json "$2"), \"exit_code\": $code, \"seconds\": $4, \"time_limit_s\": $5, \"reason\": $(json "$6"), \"command\": $(json "$7")}")
  STEP_LINES+=("$(printf '%-24s %-8s %5s %7s %7s  %s' "$1" "$2" "${3:--}" "$4" "$5" "$6")")
  if [[ $2 == failed || $2 == timeout ]]; then FAILURES=$((FAILURES + 1)); fi
  write_summary
}

plan() { # NAME=SECONDS ...: the stage's steps in order with their nominal limits, scaled to GPU_ALL_BUDGET_S
  local entry sum=0
  for entry in "$@"; do sum=$((sum + ${entry#*=})); done
  STAGE_BUDGET=${GPU_ALL_BUDGET_S:-$sum}
  for entry in "$@"; do
    PLAN_NAMES+=("${entry%%=*}")
    PLAN_LIMITS+=($((${entry#*=} * STAGE_BUDGET / sum)))
  done
}

owed_after() { # seconds the steps after step $1 are owed
  local i found=0 total=0
  for i in "${!PLAN_NAMES[@]}"; do
    if ((found)); then total=$((total + PLAN_LIMITS[i])); fi
    if [[ ${PLAN_NAMES[i]} == "$1" ]]; then found=1; fi
  done
  echo "$total"
}

skip_step() { # NAME REASON [COMMAND]
  record "$1" skipped "" 0 0 "$2" "${3:-}"
  printf '\n==> step %s skipped: %s\n' "$1" "$2" | tee -a "$LOG"
}

run_step() { # NAME COMMAND...: COMMAND under its time limit; @DEADLINE@ in it becomes 80 % of that limit
  local name=$1 limit deadline begin rc status=ok reason="" arg
  shift
  if [[ -n $NO_GPU ]]; then
    skip_step "$name" "$NO_GPU" "$*"
    return
  fi
  limit=$((START + STAGE_BUDGET - SECONDS - $(owed_after "$name")))
  if ((limit < 1)); then
    skip_step "$name" "no time left in the stage's budget ($STAGE_BUDGET s)" "$*"
    return
  fi
  deadline=$((limit * 4 / 5 > 1 ? limit * 4 / 5 : 1))
  local args=()
  for arg in "$@"; do args+=("${arg//@DEADLINE@/$deadline}"); done
  printf '\n==> step %s (time limit %s s): %s\n' "$name" "$limit" "${args[*]}" | tee -a "$LOG"
  begin=$SECONDS
  timeout -s INT -k 5 "$limit" "${args[@]}" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  if ((rc == 124 || rc == 137)); then
    status=timeout reason="stopped at its time limit ($limit s)"
  elif ((rc != 0)); then
    status=failed reason="exit status $rc"
  fi
  record "$name" "$status" "$rc" "$((SECONDS - begin))" "$limit" "$reason" "${args[*]}"
}

probe_gpu() { # sets GPU_NAME, or NO_GPU to the reason there is none
  local out rc
  out=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1)
  rc=$?
  GPU_NAME="" NO_GPU=""
  if ((rc != 0)); then
    NO_GPU="no CUDA device: $PY could not import torch ($(tail -n 1 <<<"$out"))"
  elif [[ -z $(tail -n 1 <<<"$out") ]]; then
    NO_GPU="no CUDA device: torch.cuda.is_available() is False"
  else
    GPU_NAME=$(tail -n 1 <<<"$out")
  fi
}

has_module() { "$PY" -c "import $1" >/dev/null 2>&1; }

stage_tests() {
  plan env=15 build-ext=45 pytest-gpu=250 pytest-rest=175 test-report=15
  local gpu_files=() ignores=() options=(-v -ra -p no:cacheprovider) file
  while IFS= read -r file; do gpu_files+=("$file"); done < <(grep -rlE --include='test_*.py' 'cuda|triton|kernels\.' tests benchmarks | sort)
  for file in "${gpu_files[@]}"; do ignores+=("--ignore=$file"); done
  if [[ -z $NO_GPU ]] && has_module pytest_timeout; then options+=(--timeout=240); fi
  if [[ -z $NO_GPU ]] && has_module xdist; then options+=(-n 8); fi
  run_step env "$PY" -m benchmarks.gpu_all_report env --out "$OUTDIR/env-tests.json"
  if [[ -f setup.py ]]; then
    run_step build-ext "$PY" setup.py build_ext --inplace
  else
    skip_step build-ext "${NO_GPU:-no setup.py in the repository root: nothing to build}"
  fi
  run_step pytest-gpu "$PY" -m pytest "${options[@]}" --junitxml="$OUTDIR/junit-pytest-gpu.xml" "${gpu_files[@]}"
  run_step pytest-rest "$PY" -m pytest "${options[@]}" --junitxml="$OUTDIR/junit-pytest-rest.xml" "${ignores[@]}"
  run_step test-report "$PY" -m benchmarks.gpu_all_report tests --log "$LOG" --out "$OUTDIR/failures-tests.txt" \
    --junit "$OUTDIR/junit-pytest-gpu.xml" "$OUTDIR/junit-pytest-rest.xml"
}

stage_bench() {
  plan warm-cache=80 bench-bf16=165 bench-bf16-max-autotune=105 bench-tf32-fp32=135 bench-report=15
  local bench=(-m benchmarks.bench_gpu_kernels --out "$OUTDIR/bench.json")
  LEFT_OUT+=("compile-max-autotune only at bf16, batch 65,536: its compile takes a minute or more a shape")
  LEFT_OUT+=("compile-reduce-overhead only in bf16: CUDA graphs cut launch gaps, the kernels are compile-default's")
  LEFT_OUT+=("fp16: not asked for (fp32, tf32, bf16 are); onnxruntime-cuda runs an fp16 export in the bf16 rows")
  run_step warm-cache "$PY" -m benchmarks.warm_triton_cache --sets autotune,layers --precisions bf16,tf32,fp32 \
    --batches 1,256 --deadline-s @DEADLINE@
  run_step bench-bf16 "$PY" "${bench[@]}" --precisions bf16 --batches 1,256,65536,1048576 \
    --compile-modes default,reduce-overhead --deadline-s @DEADLINE@
  run_step bench-bf16-max-autotune "$PY" "${bench[@]}" --append --precisions bf16 --batches 65536 \
    --compile-modes max-autotune --paths compile-max-autotune --deadline-s @DEADLINE@
  run_step bench-tf32-fp32 "$PY" "${bench[@]}" --append --precisions tf32,fp32 --batches 1,256,65536,1048576 \
    --compile-modes default --deadline-s @DEADLINE@
  run_step bench-report "$PY" "${bench[@]}" --report-only --plot "$OUTDIR/bench.png"
}

stage_tune() {
  plan warm-cache=60 baselines=170 disk=75 sweep=180 tune-report=15
  local tune=(-m benchmarks.tune_generator_kernel --out "$OUTDIR/tune.json" --baselines "$OUTDIR/baselines.json")
  tune+=(--disk "$OUTDIR/disk.json")
  LEFT_OUT+=("the sweep and its targets are bf16 at batch 65,536 and batch 1 only (the issue's targets)")
  run_step warm-cache "$PY" -m benchmarks.warm_triton_cache --sets autotune,sweep,latency --precisions bf16 \
    --batches 256 --deadline-s @DEADLINE@
  run_step baselines "$PY" -m benchmarks.bench_gpu_kernels --out "$OUTDIR/baselines.json" --precisions bf16 \
    --batches 65536 --compile-modes default,reduce-overhead,max-autotune \
    --paths 'eager,triton-z,triton-seed-uint8,compile-*' --deadline-s @DEADLINE@
  run_step disk "$PY" -m benchmarks.gpu_sampling_to_disk --out "$OUTDIR/disk.json" --n 10000000 \
    --deadline-s @DEADLINE@
  run_step sweep "$PY" "${tune[@]}" --deadline-s @DEADLINE@
  run_step tune-report "$PY" "${tune[@]}" --report-only --plot "$OUTDIR/tune.png" --notes "$OUTDIR/tune-notes.md"
}

probe_gpu
echo "gpu_all.sh $STAGE: ${GPU_NAME:-$NO_GPU}; python $PY; results in $OUTDIR" | tee -a "$LOG"
"stage_$STAGE"

COUNT=$(find "$OUTDIR" -type f | wc -l)
STATUS=0
if ((FAILURES > 0)); then STATUS=1; fi
if ((COUNT > 8)); then
  echo "gpu_all.sh: $COUNT files in $OUTDIR, more than the 8 the device tool brings back" | tee -a "$LOG"
  STATUS=1
fi
printf '\n%-24s %-8s %5s %7s %7s  %s\n' step status exit seconds limit reason | tee -a "$LOG"
printf '%s\n' "${STEP_LINES[@]}" | tee -a "$LOG"
echo "gpu_all.sh $STAGE: $((SECONDS - START)) s, $FAILURES step(s) failed or timed out, $COUNT files" | tee -a "$LOG"
write_summary
exit $STATUS
