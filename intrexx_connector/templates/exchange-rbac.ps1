$ErrorActionPreference = 'Stop'
$AppId = @APP_ID@
$ObjectId = @OBJECT_ID@
$DisplayName = @DISPLAY_NAME@
$ScopeName = @SCOPE_NAME@
$AssignmentPrefix = @ASSIGNMENT_PREFIX@
# The role assignments this portal wants: name = Exchange application role.
$Wanted = [ordered]@{
@WANTED@
}

function Test-NotFound {
    # Assumption (the error's shape is not documented): Exchange reports a missing object as
    # ManagementObjectNotFoundException, which the error's category or id names. Anything else is re-thrown.
    param($ErrorRecord)
    $text = '{0} {1} {2}' -f $ErrorRecord.CategoryInfo.Reason, $ErrorRecord.CategoryInfo.Category, $ErrorRecord.FullyQualifiedErrorId
    $text -match 'NotFound'
}

function Find-ServicePrincipal {
    try {
        $found = @(Get-ServicePrincipal -Identity $ObjectId)
    } catch {
        if (-not (Test-NotFound $_)) { throw }
        $found = @()
    }
    # Exact matches only: Exchange documents that a Get- cmdlet given an identity it does not find may return all
    # objects.
    @($found | Where-Object { [string]$_.ObjectId -eq $ObjectId })
}

function Find-ManagementScope {
    try {
        $found = @(Get-ManagementScope -Identity $ScopeName)
    } catch {
        if (-not (Test-NotFound $_)) { throw }
        $found = @()
    }
    @($found | Where-Object { [string]$_.Name -eq $ScopeName })
}

function Test-ThisApp {
    # Whether a role assignment is assigned to this app. Assumption: an app's assignment names the service
    # principal as its RoleAssignee(Name), which Microsoft's example output shows as its ObjectId; the AppId and
    # the Exchange name are accepted too. An assignment that matches none of them is left alone.
    param($Assignment, $ServicePrincipal)
    $names = @([string]$ServicePrincipal.ObjectId, [string]$ServicePrincipal.AppId, [string]$ServicePrincipal.Name) | Where-Object { $_ }
    ($names -contains [string]$Assignment.RoleAssigneeName) -or ($names -contains [string]$Assignment.RoleAssignee)
}

function Get-PortalAssignment {
    # This portal's role assignments: named with its prefix AND assigned to this app. Nothing else is ever removed.
    param($ServicePrincipal)
    if (-not $ServicePrincipal) { return }
    @(Get-ManagementRoleAssignment) | Where-Object {
        ([string]$_.Name).StartsWith($AssignmentPrefix, [System.StringComparison]::OrdinalIgnoreCase) -and (Test-ThisApp $_ $ServicePrincipal)
    }
}

function Remove-PortalAssignment {
    param($Assignment)
    Remove-ManagementRoleAssignment -Identity ([string]$Assignment.Name) -Confirm:$false
    Write-Host ('removed role assignment {0} ({1})' -f $Assignment.Name, $Assignment.Role)
}

# Cleanup: this portal's role assignments, then its management scope.
if ($Remove) {
    $sp = @(Find-ServicePrincipal) | Select-Object -First 1
    foreach ($assignment in @(Get-PortalAssignment $sp)) {
        Remove-PortalAssignment $assignment
    }
    if (@(Find-ManagementScope).Count -gt 0) {
        try {
            Remove-ManagementScope -Identity $ScopeName -Confirm:$false
        } catch {
            throw ('Cannot remove the management scope {0}: {1} Another role assignment may still use it: Get-ManagementRoleAssignment | Where-Object CustomResourceScope -eq ''{0}''' -f $ScopeName, $_.Exception.Message)
        }
        Write-Host ('removed management scope {0}' -f $ScopeName)
    }
    Write-Host 'Cleanup done. The service principal pointer stays: Exchange removes it, and its assignments, when the app is deleted in Entra ID.'
    exit 0
}
