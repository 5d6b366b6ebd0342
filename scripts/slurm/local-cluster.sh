#!/usr/bin/env bash
# Sourced: a one-node Slurm cluster on localhost under a temporary folder, for tests.
#   wb_cluster_start DIR   munged (generated key, own socket), slurmctld and slurmd (generated
#                          slurm.conf: proctrack/linuxproc, task/none, select/cons_tres,
#                          NodeName=localhost CPUs=2, free ports, state under DIR), as the
#                          current user; exports SLURM_CONF; returns 1 with the reason in
#                          $WB_CLUSTER_ERROR when a daemon does not come up.
#   wb_cluster_stop        stops the daemons it started (by pid).
wb_cluster_pids=()
wb_cluster_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wb_cluster_start() {
  local d=$1 user i
  user=$(id -un)
  mkdir -p "$d"/{munge,state,spool,log}
  chmod 700 "$d/munge"
  head -c 1024 /dev/urandom > "$d/munge/munge.key"
  chmod 400 "$d/munge/munge.key"
  munged --key-file="$d/munge/munge.key" --socket="$d/munge/munge.socket" \
    --pid-file="$d/munge/munged.pid" --log-file="$d/log/munged.log" \
    --seed-file="$d/munge/munged.seed" --force > "$d/log/munged.out" 2>&1 || {
    WB_CLUSTER_ERROR="munged did not start: $(tail -n 3 "$d/log/munged.out" "$d/log/munged.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  }
  wb_cluster_pids+=("$(cat "$d/munge/munged.pid")")
  local cport dport
  cport=$(wb_cluster_free_port) dport=$(wb_cluster_free_port)
  cat > "$d/slurm.conf" <<CONF
ClusterName=wbtest
SlurmctldHost=localhost
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MaxArraySize=1000
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$d/slurm.conf
  slurmctld -i > "$d/log/slurmctld.out" 2>&1 || {
    WB_CLUSTER_ERROR="slurmctld did not start: $(tail -n 5 "$d/log/slurmctld.out" "$d/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  }
  for i in $(seq 50); do [ -s "$d/slurmctld.pid" ] && break; sleep 0.1; done
  [ -s "$d/slurmctld.pid" ] && wb_cluster_pids+=("$(cat "$d/slurmctld.pid")")
  slurmd -N localhost > "$d/log/slurmd.out" 2>&1 || {
    WB_CLUSTER_ERROR="slurmd did not start: $(tail -n 5 "$d/log/slurmd.out" "$d/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    return 1
  }
  for i in $(seq 50); do [ -s "$d/slurmd.pid" ] && break; sleep 0.1; done
  [ -s "$d/slurmd.pid" ] && wb_cluster_pids+=("$(cat "$d/slurmd.pid")")
  for i in $(seq 100); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then return 0; fi
    sleep 0.2
  done
  WB_CLUSTER_ERROR="the node did not become idle: sinfo: $(sinfo -h -N -o '%T %E' 2>&1 | tr '\n' ' '); slurmd.log: $(tail -n 5 "$d/log/slurmd.log" 2>/dev/null | tr '\n' ' '); slurmctld.log: $(tail -n 5 "$d/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
  return 1
}
wb_cluster_stop() {
  local p
  for p in "${wb_cluster_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${wb_cluster_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  wb_cluster_pids=()
}
