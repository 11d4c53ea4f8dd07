package directlinetest

import (
	"encoding/json"
	"net/http"
)

// Direct Line error codes used by the Server.
const (
	codeBadArgument     = "BadArgument"
	codeMissingProperty = "MissingProperty"
	codeTokenExpired    = "TokenExpired"
	codeForbidden       = "Forbidden"
	codeServiceError    = "ServiceError"
)

// errorBody is Direct Line's error envelope: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers status with a Direct Line error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	var body errorBody
	body.Error.Code = code
	body.Error.Message = message
	writeJSON(w, status, body)
}

// writeJSON answers status with v encoded as JSON. Encoding errors cannot be
// reported to the client any more, so they are ignored.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
