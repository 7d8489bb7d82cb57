"""The names this package writes into the tracking store: one place, read by every feature."""

# the shape of a search: its parent run, its numbered trials, their state
SEARCH_TAG = "flair_mlflow.search"
TRIAL_NUMBER_TAG = "flair_mlflow.trial_number"
TASK_TAG = "flair_mlflow.task"
STATUS_TAG = "flair_mlflow.status"
PRUNED_TAG = "flair_mlflow.pruned"
PRUNED_AT_TAG = "pruned_at_epoch"
THREADS_TAG = "flair_mlflow.torch_threads"  # the torch threads a trial ran with
DEVICE_TAG = "flair_mlflow.device"  # the device it trained on
EPOCHS_REACHED_TAG = "flair_mlflow.epochs_reached"  # a multi-fidelity search: the epochs of its highest rung
RUNG_TAG = "flair_mlflow.rung"  # and that rung's index (0: the first)
CHECKPOINTS_TAG = "flair_mlflow.checkpoints"  # the folder where its paused trials' state waits
ERROR_CLASS_TAG = "error.class"
ERROR_MESSAGE_TAG = "error.message"
STOP_REASON_TAG = "stop_reason"
BEST_TRIAL_RUN_TAG = "best_trial_run_id"
BEST_TRIAL_NUMBER_TAG = "best_trial_number"
KEPT_MODEL_TAG = "flair_mlflow.model_id"  # the trial's kept model (keep_models), while it is kept
WARNING_TAG = "flair_mlflow.warning"  # the trials learnt nothing: what went wrong and the likely causes
# what resuming a search reads back
VALS_TAG = "flair_mlflow.hyperopt_vals"
SPACE_HASH_TAG = "flair_mlflow.space_hash"
CORPUS_HASH_TAG = "flair_mlflow.corpus_hash"
RESUMED_TAG = "flair_mlflow.resumed"
RESUMES_TAG = "flair_mlflow.resumes"
#: on a search started from Python whose experiment has no file form: why (register and resume refuse)
NOT_REBUILDABLE_TAG = "flair_mlflow.not_rebuildable"
# the learning-rate finder
LR_FIND_TAG = "flair_mlflow.lr_find"
LR_WARNING_TAG = "lr_find.warning"
LR_DEFAULT_RULE_TAG = "lr_find.default_rule"
# registration
REGISTER_TAG = "flair_mlflow.register"
SEARCH_RUN_TAG = "flair_mlflow.search_run_id"
BEST_TRIAL_TAG = "flair_mlflow.best_trial_run_id"
CONFIG_HASH_TAG = "flair_mlflow.config_hash"
METRIC_TAG = "flair_mlflow.metric"
TEST_SPLIT_TAG = "flair_mlflow.test_split"
SCORE_TAG = "flair_mlflow.score"
SOURCE_TAG = "flair_mlflow.source"
REGISTERED_MODEL_TAG = "flair_mlflow.registered_model"
REGISTER_RUN_TAG = "flair_mlflow.register_run_id"
# the parent's files
RESOLVED_EXPERIMENT_FILE = "experiment_resolved.yaml"
# MLflow's own system tags (documented names)
PARENT_RUN_ID_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
