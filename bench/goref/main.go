// goref: the Go reference that `make bench` measures iddecorator against. A controller-runtime
// mutating webhook that sets kube2hadoop.io/user to the submitter on Pods and on Deployments'
// pod templates, on CREATE and UPDATE, nothing else.
//
// Written the way a controller-runtime user would: webhook.Server with its certificate watcher
// and Prometheus instrumentation, an admission.Webhook around a raw admission.Handler that
// decodes the typed object, changes it and answers with PatchResponseFromRaw, and one
// JSON log line per request through zap, controller-runtime's logger. A raw Handler rather
// than a CustomDefaulter because one path serves two kinds and needs request.userInfo;
// a CustomDefaulter does the same decode/marshal/PatchResponseFromRaw internally.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager/signals"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

const userAnnotation = "kube2hadoop.io/user"

type annotator struct {
	decoder admission.Decoder
	log     logr.Logger
}

func (a *annotator) Handle(_ context.Context, req admission.Request) admission.Response {
	start := time.Now()
	user := req.UserInfo.Username
	var (
		changed []byte
		err     error
	)
	switch {
	case req.Kind.Group == "" && req.Kind.Kind == "Pod":
		pod := &corev1.Pod{}
		if err = a.decoder.Decode(req, pod); err == nil {
			pod.Annotations = withUser(pod.Annotations, user)
			changed, err = json.Marshal(pod)
		}
	case req.Kind.Group == "apps" && req.Kind.Kind == "Deployment":
		deploy := &appsv1.Deployment{}
		if err = a.decoder.Decode(req, deploy); err == nil {
			deploy.Annotations = withUser(deploy.Annotations, user)
			tpl := &deploy.Spec.Template.ObjectMeta
			tpl.Annotations = withUser(tpl.Annotations, user)
			changed, err = json.Marshal(deploy)
		}
	default:
		a.logLine(req, "allow", start)
		return admission.Allowed("not a workload this webhook annotates")
	}
	if err != nil {
		a.log.Error(err, "cannot decode the object", "uid", req.UID)
		return admission.Errored(http.StatusBadRequest, err)
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, changed)
	decision := "patch"
	if len(resp.Patches) == 0 {
		decision = "allow"
	}
	a.logLine(req, decision, start)
	return resp
}

func withUser(annotations map[string]string, user string) map[string]string {
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[userAnnotation] = user
	return annotations
}

// logLine mirrors iddecorator's one info line per admission request.
func (a *annotator) logLine(req admission.Request, decision string, start time.Time) {
	a.log.Info("admission", "endpoint", "mutate", "uid", req.UID, "kind", req.Kind.Kind,
		"operation", req.Operation, "namespace", req.Namespace, "name", req.Name,
		"user", req.UserInfo.Username, "decision", decision,
		"micros", time.Since(start).Microseconds())
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9443", "address to serve HTTPS on")
	certDir := flag.String("cert-dir", "", "directory holding tls.crt and tls.key")
	flag.Parse()

	// controller-runtime's production zap logger (JSON, info) but without its sampler, which
	// would drop 99 % of the per-request lines above 100/s: iddecorator writes every line.
	ctrl.SetLogger(zapr.NewLogger(uberzap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(uberzap.NewProductionEncoderConfig()),
		zapcore.Lock(os.Stderr), zapcore.InfoLevel))))
	log := ctrl.Log.WithName("goref")
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Error(err, "bad --listen")
		os.Exit(2)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || *certDir == "" {
		log.Error(err, "need --listen HOST:PORT and --cert-dir")
		os.Exit(2)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "cannot build the scheme")
		os.Exit(1)
	}
	server := webhook.NewServer(webhook.Options{Host: host, Port: port, CertDir: *certDir})
	server.Register("/mutate", &webhook.Admission{Handler: &annotator{
		decoder: admission.NewDecoder(scheme),
		log:     log.WithName("mutate"),
	}})
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	server.WebhookMux().Handle("/readyz", ok)
	server.WebhookMux().Handle("/healthz", ok)

	if err := server.Start(signals.SetupSignalHandler()); err != nil {
		log.Error(err, "webhook server stopped")
		os.Exit(1)
	}
}
