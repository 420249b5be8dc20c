# The study plan (posttrain/plan.py): config -> validated jobs, paths and resources. One message names a bad key.
from snakemake.exceptions import WorkflowError

from posttrain.config import ConfigError
from posttrain.plan import Plan, inputs, job_param, one_of, resources, threads

try:
    PLAN = Plan(config, deepspeed_dir=f"{workflow.basedir}/../config/deepspeed")
except ConfigError as e:
    raise WorkflowError(str(e)) from None
PATHS = PLAN.paths
ENV = f"{workflow.basedir}/envs/posttrain.yaml"  # every rule's software


onstart:  # a real run only (not a dry run): the generation engine must import where the jobs run
    try:
        PLAN.check_engine(conda=bool(workflow.deployment_settings.deployment_method))
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


wildcard_constraints:
    run=one_of(PLAN.runs),
    dataset=one_of(PLAN.config["datasets"]),
    step=r"\d+",
    name=one_of(PLAN.config["reward_models"]),
    judge=one_of(PLAN.config["judges"]),
    model=one_of(PLAN.config["models"]),
    split="train|dev|test|real",
