#!/bin/sh
# Seeds fuzz/corpus/<target>/ from ../shared/fixtures (or $HEAPSTER_FIXTURES) plus a few
# hand-written inputs. Run from anywhere; the corpus directories are not committed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures=${HEAPSTER_FIXTURES:-$here/../../shared/fixtures}
corpus=$here/corpus
mkdir -p "$corpus/summary_decode" "$corpus/resource_decode" "$corpus/source_url" \
    "$corpus/sink_url" "$corpus/api_request"
if [ -d "$fixtures/kubelet" ]; then
    for f in "$fixtures"/kubelet/*summary*.json; do
        # Summaries run to 100 KB: pass -max_len=131072 so libFuzzer mutates whole payloads.
        cp "$f" "$corpus/summary_decode/"
    done
    cp "$fixtures"/kubelet/*.txt "$corpus/resource_decode/"
else
    echo "no fixtures at $fixtures: seeding only the hand-written inputs" >&2
fi
seed() { printf '%s' "$2" > "$corpus/$1/$3"; }
# Every section decoded: PSI totals, swap, rlimit, process_stats and a volume's pvcRef (the
# captures have no claim).
seed summary_decode '{"node":{"nodeName":"n","cpu":{"time":"2026-01-01T00:00:00Z","usageCoreNanoSeconds":7,"psi":{"some":{"total":9,"avg10":1.5},"full":{"total":3}}},"io":{"time":"2026-01-01T00:00:00Z","psi":{"some":{"total":4}}},"swap":{"swapAvailableBytes":1,"swapUsageBytes":2},"rlimit":{"maxpid":4194304,"curproc":300}},"pods":[{"podRef":{"name":"p","namespace":"ns","uid":"u"},"memory":{"time":"2026-01-01T00:00:00Z","psi":{"some":{"total":5},"full":{"total":1}}},"swap":{"swapUsageBytes":8},"process_stats":{"process_count":2},"volume":[{"name":"data","usedBytes":5,"pvcRef":{"name":"data-p","namespace":"ns"}}],"containers":[{"name":"c","io":{"psi":{"full":{"total":3}}},"swap":{"swapUsageBytes":0}}]}]}' s-sections
seed source_url 'kubernetes:https://kubernetes.default' s1
seed source_url 'kubernetes:http://10.47.136.60:8080?inClusterConfig=false' s2
seed source_url 'kubernetes:https://kubernetes.default?inClusterConfig=false&insecure=true&auth=/root/.kube/config' s3
seed source_url 'kubernetes.summary_api:${HOST}?kubeletPort=10255&kubeletHttps=true&addressTypes=InternalIP,Hostname&kubeletEndpoint=auto&nodeProxy=1' s4
seed source_url 'simulated:?nodes=3&podsPerNode=2&containersPerPod=1&https=true' s5
seed source_url "kubernetes:''" s6
seed sink_url 'influxdb:http://monitoring-influxdb:8086?user=root&pw=$S&db=k8s&retention=2h&withfields=true' k1
seed sink_url 'influxdb:https://$HOST?token=$S&org=o&bucket=b&version=2&gzip=false&batch_size=100' k2
seed sink_url 'influxdb:?cluster_name=c&disable_counter_metrics=true&concurrency=4&buffer_points=10&rp=x&secure=true&insecuressl=1' k3
seed sink_url 'log' k4
seed api_request '/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-01T00:00:00Z&end=2026-01-01T00:01:00Z' a1
seed api_request '/api/v1/model/namespaces/default/pod-list/p1,p2/metrics/memory-usage?labels=resource_id:/' a2
seed api_request '/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(web,db),!x&fieldSelector=metadata.name!=p2' a3
seed api_request '/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/p1' a4
seed api_request "$(printf '/api/v1/model/namespaces/default/pods/p1/containers/app/metrics\naccept-encoding: gzip')" a5
seed api_request '/api/v1/model/nodes/n1/freecontainers/kubelet/metrics/memory/working_set' a6
seed api_request '/metrics' a7
echo "corpus seeded in $corpus"
